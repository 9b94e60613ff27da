// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../lib/cli.mts'
import {
  buildContexts,
  effectiveDependsOn,
  imageOf,
  interpolatedVariables,
  isNodeService,
  mountedPaths,
  normalizeDependsOn,
  parseCompose,
  serviceNames,
  variablesIn,
} from '../../lib/compose.mts'

const FIX = path.resolve(process.cwd(), '../shared/fixtures/posthog')
const hobby = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.hobby.yml'), 'utf8'))
const base = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.base.yml'), 'utf8'))

describe('services and depends_on', () => {
  it('lists the services the hobby file defines', () => {
    const names = serviceNames(hobby)
    expect(names).toHaveLength(38)
    expect(names).toEqual(
      expect.arrayContaining(['web', 'worker', 'proxy', 'capture', 'feature-flags', 'kafka-init']),
    )
    expect(names).not.toContain('cyclotron-janitor')
  })
  it('normalises both depends_on syntaxes', () => {
    expect(normalizeDependsOn(['a', 'b'])).toEqual({ a: 'service_started', b: 'service_started' })
    expect(normalizeDependsOn({ a: { condition: 'service_healthy' }, b: null })).toEqual({
      a: 'service_healthy',
      b: 'service_started',
    })
    expect(normalizeDependsOn(undefined)).toEqual({})
  })
  it('merges what extends brings from the base file, the local entry winning', () => {
    const deps = effectiveDependsOn(hobby, base)
    expect(deps.temporal).toEqual({ db: 'service_healthy', elasticsearch: 'service_healthy' })
    expect(deps['temporal-ui']).toEqual({ temporal: 'service_started', db: 'service_healthy' })
    expect(deps.livestream).toEqual({ kafka: 'service_started' })
    expect(deps.proxy).toEqual({ web: 'service_started', livestream: 'service_started' })
    expect(deps['property-defs-rs']).toEqual({
      'kafka-init': 'service_completed_successfully',
      db: 'service_healthy',
    })
  })
  it('follows extends inside one file and across files', () => {
    const b = parseCompose(
      'services:\n  a:\n    image: x\n    depends_on: [db]\n  b:\n    extends: a\n    depends_on:\n      db:\n        condition: service_healthy\n',
    )
    const h = parseCompose(
      'services:\n  c:\n    extends:\n      file: base.yml\n      service: b\n    depends_on: [cache]\n',
    )
    expect(effectiveDependsOn(h, b).c).toEqual({ db: 'service_healthy', cache: 'service_started' })
  })
})

describe('mounted paths and build contexts', () => {
  it('derives the ./posthog/ bind mounts from the file', () => {
    expect(mountedPaths(hobby).map((m) => m.path)).toEqual([
      'posthog/idl',
      'docker/clickhouse/docker-entrypoint-initdb.d',
      'docker/clickhouse/config.xml',
      'docker/clickhouse/config.d/default.xml',
      'docker/clickhouse/users.xml',
      'docker/clickhouse/user_defined_function.xml',
      'posthog/user_scripts',
      'docker/temporal/dynamicconfig',
      'docker/livestream/configs-hobby.yml',
      'docker/kafka/topics.txt',
    ])
  })
  it('reads long-syntax binds and ignores named volumes and other paths', () => {
    const f = parseCompose(
      'services:\n  a:\n    volumes:\n      - data:/data\n      - ./share:/share\n      - type: bind\n        source: ./posthog/x/y.conf\n        target: /y\n      - type: volume\n        source: ./posthog/not\n        target: /n\n',
    )
    expect(mountedPaths(f)).toEqual([{ service: 'a', path: 'x/y.conf' }])
  })
  it('refuses paths that escape the checkout', () => {
    const f = parseCompose('services:\n  a:\n    volumes:\n      - ./posthog/../../etc:/etc\n')
    expect(() => mountedPaths(f)).toThrow(UsageError)
  })
  it('lists build contexts under ./posthog/', () => {
    const ctx = buildContexts(hobby)
    expect(new Set(ctx.map((c) => c.path))).toEqual(new Set(['rust']))
    expect(ctx.map((c) => c.service)).toContain('capture')
  })
})

describe('interpolated variables', () => {
  it('parses every Compose form; $$ is an escape', () => {
    const vars = variablesIn('$A ${B} ${C:-x} ${D-y} ${E:?need E} ${F?} $$G $${H} ${I:-$J} ${K:+k}')
    expect([...vars.keys()].sort()).toEqual(['A', 'B', 'C', 'D', 'E', 'F', 'I', 'J', 'K'])
    expect(vars.get('A')).toEqual({ name: 'A', hasDefault: false, required: false })
    expect(vars.get('C')?.hasDefault).toBe(true)
    expect(vars.get('D')?.hasDefault).toBe(true)
    expect(vars.get('E')).toEqual({ name: 'E', hasDefault: false, required: true })
    expect(vars.get('J')?.hasDefault).toBe(false)
    expect(vars.get('K')?.hasDefault).toBe(true)
  })
  it('needs a value when any use lacks a default', () => {
    expect(variablesIn('${X:-a} $X').get('X')?.hasDefault).toBe(false)
  })
  it('finds the variables the fixture files interpolate (values only, not comments)', () => {
    const vars = Object.fromEntries(interpolatedVariables(hobby, base).map((v) => [v.name, v]))
    const needed = Object.values(vars)
      .filter((v) => !v.hasDefault)
      .map((v) => v.name)
      .sort()
    expect(needed).toEqual([
      'DOMAIN',
      'ENCRYPTION_SALT_KEYS',
      'POSTHOG_APP_TAG',
      'POSTHOG_SECRET',
      'REGISTRY_URL',
      'TLS_BLOCK',
    ])
    expect(vars.CADDY_TLS_BLOCK?.hasDefault).toBe(true)
    expect(vars.POSTHOG_NODE_TAG?.hasDefault).toBe(true)
    expect(vars.ELAPSED).toBeUndefined()
    expect(vars.TOPICS).toBeUndefined()
  })
})

describe('images', () => {
  it('recognises node services', () => {
    expect(isNodeService(imageOf(hobby, base, 'plugins'))).toBe(true)
    expect(isNodeService(imageOf(hobby, base, 'web'))).toBe(false)
    expect(isNodeService(imageOf(hobby, base, 'capture'))).toBe(false)
  })
})
