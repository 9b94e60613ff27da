// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { mergeEnv, toConfig } from '../../../lib/core/env.mts'
import { type ComposeFile, parseCompose } from '../../../lib/stack/compose.mts'
import { buildOverride, CLICKHOUSE_CONFIG_FILE, clickhouseLogsConfig } from '../../../lib/stack/override.mts'
import {
  buildStackEnv,
  COMPOSE_SCRIPTS,
  composeEnvLine,
  describeSwitchedOff,
  neededPaths,
} from '../../../lib/stack/prepare.mts'
import { scratchDir } from '../../helpers/common.ts'
import { expectSafeStack, loadStack } from '../../helpers/compose-model.ts'
import { type HobbyShape, hobbyFiles, hobbyPair, upstreamPair } from '../../helpers/hobby-fixture.ts'
import { needShared, UPSTREAM_POSTHOG } from '../../helpers/shared.ts'

const { hobby, base } = hobbyPair('current')

function cfg(extra: Record<string, string> = {}) {
  const raw = mergeEnv({ POSTHOG_SECRET: 'a'.repeat(56), ENCRYPTION_SALT_KEYS: 'b'.repeat(32), ...extra }, {})
  return toConfig('/tmp/x', '/tmp/x/.env', raw)
}

describe('buildStackEnv', () => {
  it('gives every interpolated variable without a default a value', () => {
    const env = buildStackEnv(cfg(), hobby, base)
    expect(env).toContain('COMPOSE_PROJECT_NAME=posthog\n')
    expect(env).toContain('COMPOSE_FILE=docker-compose.yml:docker-compose.override.yml\n')
    expect(env).toContain('REGISTRY_URL=posthog/posthog\n')
    expect(env).toContain('POSTHOG_APP_TAG=latest\n')
    expect(env).toContain('TLS_BLOCK=\n')
    expect(env).toContain(`POSTHOG_SECRET=${'a'.repeat(56)}\n`)
    expect(env).toContain("CADDY_TLS_BLOCK='auto_https off'\n")
    // Optional ones with defaults are left to Compose unless .env sets them.
    expect(env).not.toContain('CLICKHOUSE_SERVER_IMAGE')
    expect(buildStackEnv(cfg({ CLICKHOUSE_SERVER_IMAGE: 'ch:1' }), hobby, base)).toContain(
      'CLICKHOUSE_SERVER_IMAGE=ch:1\n',
    )
  })
  it('reports a variable nobody sets before anything starts', () => {
    const h = parseCompose(
      'services:\n  a:\n    image: x:${MY_TAG}\n    environment:\n      B: ${OPTIONAL:-1}\n',
    )
    expect(() => buildStackEnv(cfg(), h)).toThrow(UsageError)
    expect(() => buildStackEnv(cfg(), h)).toThrow(/need MY_TAG .* add MY_TAG=/)
    expect(buildStackEnv(cfg({ MY_TAG: 'v1' }), h)).toContain('MY_TAG=v1')
  })
})

describe('composeEnvLine', () => {
  it('quotes so Compose reads values literally', () => {
    expect(composeEnvLine('A', 'plain-1.2')).toBe('A=plain-1.2')
    expect(composeEnvLine('A', 'has space $HOME')).toBe("A='has space $HOME'")
    expect(() => composeEnvLine('A', "it's")).toThrow(UsageError)
  })
})

describe('compose scripts', () => {
  it('are the upstream start/wait/worker entry points', () => {
    expect(COMPOSE_SCRIPTS.start).toBe('#!/bin/bash\n/compose/wait\n./bin/migrate\n./bin/docker-server\n')
    expect(COMPOSE_SCRIPTS.wait).toMatch(
      /"clickhouse", 9000[\s\S]*"db", 5432|ready\("clickhouse", 9000\) and ready\("db", 5432\)/,
    )
    expect(COMPOSE_SCRIPTS['temporal-django-worker']).toContain('./bin/temporal-django-worker')
  })
})

describe('neededPaths', () => {
  it('names the env_files and mounts of each version, whatever they are', () => {
    expect(neededPaths(hobby, base).envFiles).toEqual(['.env.services'])
    const old = hobbyPair('old')
    expect(neededPaths(old.hobby, old.base)).toEqual({
      envFiles: [],
      mounts: [
        'posthog/idl',
        'docker/clickhouse/docker-entrypoint-initdb.d',
        'docker/clickhouse/config.xml',
        'docker/clickhouse/users.xml',
        'docker/temporal/dynamicconfig',
      ],
    })
  })
})

describe('describeSwitchedOff', () => {
  it('says per feature what it costs and about how much memory it saves', () => {
    const lines = describeSwitchedOff(
      buildOverride({
        hobby,
        base,
        disabled: { features: ['error-tracking', 'session-replay'], services: ['temporal'] },
        memoryLimits: {},
        proxyPort: 18000,
        worker: { concurrency: '1', maxTasksPerChild: '1', maxMemoryPerChild: '1' },
      }),
    )
    expect(lines[0]).toMatch(
      /^error-tracking off \(cymbal, cymbal-resolution; saves about \d+ MiB\): no error tracking/,
    )
    expect(lines[1]).toMatch(
      /^session-replay off \(ingestion-sessionreplay, recording-api, replay-capture; saves about \d+ MiB\): no session recordings/,
    )
    expect(lines).toContain('temporal off (DISABLED_SERVICES; saves about 150 MiB)')
  })
})

/** STACK_DIR as prepare writes it, from a compose pair, without the network. */
function writeStack(files: Record<string, string>, hobbyFile: ComposeFile, baseFile: ComposeFile): string {
  const stack = scratchDir('stack-model-')
  fs.writeFileSync(path.join(stack, 'docker-compose.yml'), files['docker-compose.hobby.yml']!)
  fs.writeFileSync(path.join(stack, 'docker-compose.base.yml'), files['docker-compose.base.yml']!)
  for (const rel of neededPaths(hobbyFile, baseFile).envFiles)
    fs.writeFileSync(path.join(stack, rel), files[rel] ?? 'A=1\n')
  const override = buildOverride({
    hobby: hobbyFile,
    base: baseFile,
    disabled: { features: ['error-tracking', 'live-events', 'temporal-ui'], services: [] },
    memoryLimits: { clickhouse: '2g', web: '1.5g' },
    proxyPort: 18123,
    worker: { concurrency: '1', maxTasksPerChild: '100', maxMemoryPerChild: '400000' },
  })
  fs.writeFileSync(path.join(stack, 'docker-compose.override.yml'), override.yaml)
  fs.mkdirSync(path.join(stack, 'clickhouse'))
  fs.writeFileSync(path.join(stack, CLICKHOUSE_CONFIG_FILE), clickhouseLogsConfig())
  fs.writeFileSync(path.join(stack, '.env'), buildStackEnv(cfg(), hobbyFile, baseFile))
  return stack
}

describe.skipIf(!needShared('tools/linux-amd64/compose-config', 'the checks with the real Compose loader'))(
  'the generated stack, loaded by the real Compose loader',
  () => {
    const GiB = 1024 ** 3
    it.each(['current', 'old'] as HobbyShape[])(
      '%s shape: loads clean, proxy on 127.0.0.1 only, features off',
      (shape) => {
        const pair = hobbyPair(shape)
        const model = loadStack(writeStack(hobbyFiles(shape), pair.hobby, pair.base))!
        expectSafeStack(model, {
          proxyPort: 18123,
          enabled: ['web', 'worker', 'proxy', 'capture', 'feature-flags', 'replay-capture'],
          disabled: ['livestream', 'temporal-ui', 'cymbal', 'cymbal-resolution'],
          memoryLimits: { clickhouse: 2 * GiB, web: 1.5 * GiB },
        })
        const mounts = model.services.clickhouse?.volumes?.map((v) => v.target) ?? []
        expect(mounts).toContain('/etc/clickhouse-server/config.d/posthog-homelab.xml')
      },
    )
    it("PostHog's own newest files too", () => {
      const u = upstreamPair()
      if (!u) return
      const dir = UPSTREAM_POSTHOG!
      const files = Object.fromEntries(
        ['docker-compose.hobby.yml', 'docker-compose.base.yml'].map((f) => [
          f,
          fs.readFileSync(path.join(dir, f), 'utf8'),
        ]),
      )
      const model = loadStack(writeStack(files, u.hobby, u.base))!
      expectSafeStack(model, {
        proxyPort: 18123,
        enabled: ['web', 'property-defs-rs', 'replay-capture', 'recording-api'],
        disabled: ['livestream', 'cymbal', 'cymbal-resolution', 'ingestion-error-tracking', 'temporal-ui'],
      })
    })
  },
)
