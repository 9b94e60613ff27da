// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../lib/cli.mts'
import { parseCompose } from '../../lib/compose.mts'
import { mergeEnv, toConfig } from '../../lib/env.mts'
import { buildStackEnv, COMPOSE_SCRIPTS, composeEnvLine } from '../../lib/prepare.mts'

const FIX = path.resolve(process.cwd(), '../shared/fixtures/posthog')
const hobby = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.hobby.yml'), 'utf8'))
const base = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.base.yml'), 'utf8'))

function cfg(extra: Record<string, string> = {}) {
  const raw = mergeEnv({ POSTHOG_SECRET: 'a'.repeat(56), ENCRYPTION_SALT_KEYS: 'b'.repeat(32), ...extra }, {})
  return toConfig('/tmp/x', '/tmp/x/.env', raw)
}

describe('buildStackEnv', () => {
  it('gives every interpolated variable without a default a value', () => {
    const env = buildStackEnv(cfg(), hobby, base)
    expect(env).toContain('REGISTRY_URL=posthog/posthog\n')
    expect(env).toContain('POSTHOG_APP_TAG=latest\n')
    expect(env).toContain('TLS_BLOCK=\n')
    expect(env).toContain(`POSTHOG_SECRET=${'a'.repeat(56)}\n`)
    expect(env).toContain("CADDY_TLS_BLOCK='auto_https off'\n")
    // Optional ones with defaults are left to Compose unless .env sets them.
    expect(env).not.toContain('ANTHROPIC_API_KEY')
    expect(buildStackEnv(cfg({ ANTHROPIC_API_KEY: 'sk-x' }), hobby, base)).toContain(
      'ANTHROPIC_API_KEY=sk-x\n',
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
