// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  buildContexts,
  effectiveDependsOn,
  effectiveValue,
  envFiles,
  environmentKeys,
  imageOf,
  interpolatedVariables,
  isNodeService,
  mountedPaths,
  normalizeDependsOn,
  parseCompose,
  serviceNames,
  variablesIn,
} from '../../../lib/stack/compose.mts'
import { hobbyPair, upstreamPair } from '../../helpers/hobby-fixture.ts'
import { needShared } from '../../helpers/shared.ts'

const { hobby, base } = hobbyPair('current')
const old = hobbyPair('old')

describe('services and depends_on', () => {
  it('lists the services the hobby file defines', () => {
    const names = serviceNames(hobby)
    expect(names).toHaveLength(28)
    expect(names).toEqual(
      expect.arrayContaining(['web', 'worker', 'proxy', 'capture', 'feature-flags', 'kafka-init']),
    )
    expect(serviceNames(old.hobby)).toEqual(expect.arrayContaining(['redis', 'redis7', 'cyclotron-janitor']))
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

describe('inherited settings', () => {
  it('reads a value from the most specific definition that sets it', () => {
    expect(effectiveValue(hobby, base, 'web', ['command'])).toBe('/compose/start')
    expect(effectiveValue(hobby, base, 'worker', ['command'])).toBe(
      './bin/docker-worker-celery --with-scheduler',
    )
    expect(effectiveValue(hobby, base, 'cymbal', ['logging', 'driver'])).toBe('json-file')
    expect(effectiveValue(old.hobby, old.base, 'web', ['logging'])).toBeUndefined()
    expect(String(effectiveValue(hobby, base, 'proxy', ['environment', 'CADDYFILE']))).toContain('@capture')
  })
  it('lists environment keys from both syntaxes, through extends and merge keys', () => {
    expect(environmentKeys(hobby, base, 'temporal')).toEqual(
      expect.arrayContaining(['ENABLE_ES', 'DB', 'DYNAMIC_CONFIG_FILE_PATH']),
    )
    expect(environmentKeys(hobby, base, 'web')).toEqual(expect.arrayContaining(['SITE_URL', 'KAFKA_HOSTS']))
    expect(environmentKeys(hobby, base, 'zookeeper')).toContain('ZOO_AUTOPURGE_PURGEINTERVAL')
    expect(environmentKeys(old.hobby, old.base, 'zookeeper')).toEqual([])
  })
})

describe('env_files', () => {
  it('finds the env_file the base gives the Django services through a merge key', () => {
    const uses = envFiles(hobby, base)
    expect([...new Set(uses.map((u) => u.path))]).toEqual(['.env.services'])
    expect(uses.map((u) => u.service).sort()).toEqual([
      'asyncmigrationscheck',
      'temporal-django-worker',
      'web',
      'worker',
    ])
  })
  it('finds none in a version from before .env.services', () => {
    expect(envFiles(old.hobby, old.base)).toEqual([])
  })
  it('reads every env_file syntax and keeps whatever name the file uses', () => {
    const f = parseCompose(
      'services:\n  a:\n    env_file: ./docker/dev-services.env\n  b:\n    env_file: [x.env, {path: y.env, required: false}]\n',
    )
    expect(envFiles(f)).toEqual([
      { service: 'a', path: 'docker/dev-services.env', required: true },
      { service: 'b', path: 'x.env', required: true },
      { service: 'b', path: 'y.env', required: false },
    ])
  })
  it('refuses an env_file outside the compose files folder', () => {
    expect(() => envFiles(parseCompose('services:\n  a:\n    env_file: ../../etc/passwd\n'))).toThrow(
      UsageError,
    )
    expect(() => envFiles(parseCompose('services:\n  a:\n    env_file: /etc/passwd\n'))).toThrow(UsageError)
  })
})

describe('mounted paths and build contexts', () => {
  it('derives the ./posthog/ bind mounts from the file', () => {
    expect(mountedPaths(hobby, base).map((m) => m.path)).toEqual([
      'posthog/idl',
      'docker/clickhouse/docker-entrypoint-initdb.d',
      'docker/clickhouse/config.xml',
      'docker/clickhouse/config.d/default.xml',
      'docker/clickhouse/users.xml',
      'docker/clickhouse/user_defined_function.xml',
      'posthog/user_scripts',
      'docker/kafka/topics.txt',
      'docker/temporal/dynamicconfig',
      'docker/livestream/configs-hobby.yml',
    ])
    expect(mountedPaths(old.hobby, old.base).map((m) => m.path)).toContain('docker/temporal/dynamicconfig')
  })
  it('includes the mounts a base service brings through extends', () => {
    const b = parseCompose('services:\n  a:\n    volumes:\n      - ./posthog/from/base.conf:/c\n')
    const h = parseCompose('services:\n  x:\n    extends:\n      file: b.yml\n      service: a\n')
    expect(mountedPaths(h, b)).toEqual([{ service: 'x', path: 'from/base.conf' }])
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
  it('finds the variables the compose files interpolate (values only, not comments)', () => {
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

const upstream = upstreamPair()
describe.skipIf(!needShared('fixtures/posthog', "the checks on PostHog's own compose files"))(
  "PostHog's own newest compose files",
  () => {
    const u = upstream!
    it('defines 38 services, cyclotron-janitor no longer among them', () => {
      expect(serviceNames(u.hobby)).toHaveLength(38)
      expect(serviceNames(u.hobby)).not.toContain('cyclotron-janitor')
    })
    it('merges what extends brings from the base file, the local entry winning', () => {
      const deps = effectiveDependsOn(u.hobby, u.base)
      expect(deps.temporal).toEqual({ db: 'service_healthy', elasticsearch: 'service_healthy' })
      expect(deps['temporal-ui']).toEqual({ temporal: 'service_started', db: 'service_healthy' })
      expect(deps.proxy).toEqual({ web: 'service_started', livestream: 'service_started' })
      expect(deps['property-defs-rs']).toEqual({
        'kafka-init': 'service_completed_successfully',
        db: 'service_healthy',
      })
    })
    it('needs .env.services and exactly these mounts', () => {
      expect([...new Set(envFiles(u.hobby, u.base).map((e) => e.path))]).toEqual(['.env.services'])
      expect(mountedPaths(u.hobby, u.base).map((m) => m.path)).toEqual([
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
      expect(new Set(buildContexts(u.hobby).map((c) => c.path))).toEqual(new Set(['rust']))
    })
    it('interpolates the same variables without defaults', () => {
      const needed = interpolatedVariables(u.hobby, u.base)
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
    })
  },
)
