// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import { describe, expect, it } from 'vitest'
import { parseDocument } from 'yaml'
import { UsageError } from '../../../lib/core/cli.mts'
import { parseCompose } from '../../../lib/stack/compose.mts'
import {
  buildCaddyfile,
  buildOverride,
  clickhouseLogsConfig,
  type OverrideInput,
  onLoopback,
} from '../../../lib/stack/override.mts'
import { hobbyPair, upstreamPair } from '../../helpers/hobby-fixture.ts'
import { needShared } from '../../helpers/shared.ts'

const { hobby, base } = hobbyPair('current')
const DEFAULT_FEATURES = ['error-tracking', 'live-events', 'temporal-ui']

const tags = (['!override', '!reset'] as const).flatMap((tag) =>
  (['seq', 'map'] as const).map((collection) => ({ tag, collection, resolve: (v: unknown) => v })),
)

function input(over: Partial<OverrideInput> = {}): OverrideInput {
  return {
    hobby,
    base,
    disabled: { features: DEFAULT_FEATURES, services: [] },
    memoryLimits: { clickhouse: '2g', web: '1.5g', worker: '1.5g', elasticsearch: '512m' },
    proxyPort: 18000,
    worker: { concurrency: '1', maxTasksPerChild: '100', maxMemoryPerChild: '400000' },
    ...over,
  }
}

const off = (services: string[], features: string[] = []) => ({ features, services })

// biome-ignore lint/suspicious/noExplicitAny: test access to generated YAML
function load(yaml: string): any {
  const doc = parseDocument(yaml, { customTags: tags })
  expect(doc.errors).toEqual([])
  return doc.toJS()
}

describe('buildOverride on a current-shape stack', () => {
  const res = buildOverride(input())
  const o = load(res.yaml)

  it("switches off the default features' services with a profile that is never activated", () => {
    const expected = ['temporal-admin-tools', 'temporal-ui', 'livestream', 'cymbal', 'cymbal-resolution']
    expect(res.disabledServices.sort()).toEqual([...expected].sort())
    for (const s of expected) {
      expect(o.services[s].profiles).toEqual(['off'])
      expect(o.services[s].deploy).toBeUndefined()
    }
    expect(res.yaml).toMatch(
      /# switched off \(feature live-events\)[^\n]*\n\s+livestream:\n\s+profiles: !override/,
    )
    expect(res.plan.features).toEqual(DEFAULT_FEATURES)
    expect(res.enabledServices).toContain('property-defs-rs')
    expect(res.enabledServices).toContain('replay-capture')
  })
  it('drops dependencies on switched-off services with !override', () => {
    expect(res.yaml).toMatch(/depends_on: !override\n\s+web:\n\s+condition: service_started/)
    expect(o.services.proxy.depends_on).toEqual({ web: { condition: 'service_started' } })
  })
  it('publishes the proxy only on 127.0.0.1 with ports: !override, other ports left alone when local', () => {
    expect(res.yaml).toContain('ports: !override')
    expect(o.services.proxy.ports).toEqual(['127.0.0.1:18000:80'])
    expect(o.services.objectstorage?.ports).toBeUndefined()
  })
  it('gives Caddy plain HTTP for any host, no ACME, trusted private proxies, the base routes kept', () => {
    const caddy: string = o.services.proxy.environment.CADDYFILE
    expect(caddy).toMatch(/^\{\n\s+auto_https off\n\s+servers \{\n\s+trusted_proxies static private_ranges/)
    expect(caddy).toContain('\nhttp:// {\n')
    expect(caddy).toContain('reverse_proxy feature-flags:3001')
    expect(caddy).toContain('reverse_proxy capture:3000')
    expect(caddy).toContain('reverse_proxy replay-capture:3000')
    expect(caddy).not.toContain('${')
    expect(caddy).not.toMatch(/acme/i)
  })
  it('answers a fast 404 naming the switch on routes to switched-off services, instead of a 502', () => {
    const caddy: string = o.services.proxy.environment.CADDYFILE
    expect(caddy).not.toContain('reverse_proxy livestream')
    expect(caddy).not.toContain('flush_interval')
    expect(caddy).toMatch(
      /handle @livestream \{\n\s+uri strip_prefix \/livestream\n\s+respond "livestream is switched off on this PostHog \(feature live-events; see DISABLED_FEATURES in \.env\)" 404\n\s+\}/,
    )
    const replayOff = load(buildOverride(input({ disabled: off([], ['session-replay']) })).yaml)
    expect(replayOff.services.proxy.environment.CADDYFILE).toMatch(
      /respond "replay-capture is switched off on this PostHog \(feature session-replay;[^"]*" 404/,
    )
  })
  it('caps memory for defined, enabled services only', () => {
    expect(o.services.clickhouse.deploy.resources.limits.memory).toBe('2g')
    expect(o.services.elasticsearch.deploy.resources.limits.memory).toBe('512m')
    const r = buildOverride(input({ memoryLimits: { nosuch: '1g', livestream: '1g' } }))
    expect(load(r.yaml).services.nosuch).toBeUndefined()
    expect(load(r.yaml).services.livestream.deploy).toBeUndefined()
    expect(r.notices.join('\n')).toMatch(/MEMORY_LIMITS names nosuch/)
  })
  it('applies the pitfall fixes, each with its comment', () => {
    expect(o.services.plugins.environment).toMatchObject({
      SESSION_RECORDING_API_REDIS_HOST: 'redis7',
      SESSION_RECORDING_API_REDIS_PORT: '6379',
      SES_REGION: 'us-east-1',
      CDP_REDIS_TLS: 'false',
      LOGS_REDIS_TLS: 'false',
    })
    expect(o.services['recording-api'].environment.SES_REGION).toBe('us-east-1')
    expect(o.services.web.environment).toBeUndefined()
    expect(o.services.worker.environment).toEqual({
      WEB_CONCURRENCY: '1',
      CELERY_MAX_TASKS_PER_CHILD: '100',
      CELERY_MAX_MEMORY_PER_CHILD: '400000',
    })
    for (const n of [1, 2, 3, 4, 5]) expect(res.yaml).toMatch(new RegExp(`# .*[Pp]itfall ${n}`))
  })
  it("mounts ClickHouse's log settings; keeps upstream's own log rotation and ZooKeeper purge", () => {
    expect(o.services.clickhouse.volumes).toEqual([
      './clickhouse/posthog-homelab.xml:/etc/clickhouse-server/config.d/posthog-homelab.xml:ro',
    ])
    expect(res.yaml).toMatch(/# ClickHouse's own system logs/)
    for (const s of res.enabledServices) expect(o.services[s]?.logging).toBeUndefined()
    expect(o.services.zookeeper?.environment).toBeUndefined()
  })
  it('is deterministic', () => {
    expect(buildOverride(input()).yaml).toBe(res.yaml)
  })
})

describe('buildOverride on an older PostHog (no env_file, MinIO, redis + redis7, cyclotron-janitor)', () => {
  const old = hobbyPair('old')
  const res = buildOverride(input({ ...old }))
  const o = load(res.yaml)

  it('switches off what this version has of each feature and says what it lacks', () => {
    expect(res.disabledServices.sort()).toEqual(['livestream', 'temporal-ui'])
    expect(res.notices.join('\n')).toMatch(/error-tracking: this PostHog version has none of its services/)
    expect(res.enabledServices).toEqual(expect.arrayContaining(['redis', 'redis7', 'cyclotron-janitor']))
  })
  it('rebinds every port it published on all interfaces to 127.0.0.1', () => {
    expect(o.services.objectstorage.ports).toEqual(['127.0.0.1:19000:19000', '127.0.0.1:19001:19001'])
    expect(o.services.temporal.ports).toEqual(['127.0.0.1:7233:7233'])
    expect(o.services.proxy.ports).toEqual(['127.0.0.1:18000:80'])
    expect(res.yaml).toMatch(/# published on 127\.0\.0\.1 only/)
  })
  it('rotates every container log and makes ZooKeeper purge its snapshots', () => {
    for (const s of res.enabledServices)
      expect(o.services[s].logging, s).toEqual({
        driver: 'json-file',
        options: { 'max-size': '50m', 'max-file': '3' },
      })
    expect(o.services.zookeeper.environment).toEqual({
      ZOO_AUTOPURGE_PURGEINTERVAL: '1',
      ZOO_AUTOPURGE_SNAPRETAINCOUNT: '3',
    })
    expect(res.yaml).toMatch(/# ZooKeeper purges old snapshots[^\n]*#14965/)
  })
})

describe('onLoopback', () => {
  it.each([
    ['19000:19000', '127.0.0.1:19000:19000'],
    ['8081:8080/tcp', '127.0.0.1:8081:8080/tcp'],
    ['0.0.0.0:80:80', '127.0.0.1:80:80'],
    ['127.0.0.1:7233:7233', '127.0.0.1:7233:7233'],
    ['[::]:443:443', '127.0.0.1:443:443'],
    ['9000', '127.0.0.1::9000'],
  ])('%s -> %s', (from, to) => {
    expect(onLoopback(from)).toBe(to)
  })
  it('sets host_ip on the long syntax', () => {
    expect(onLoopback({ target: 80, published: '8080' })).toEqual({
      target: 80,
      published: '8080',
      host_ip: '127.0.0.1',
    })
    expect(onLoopback(5432)).toBe('127.0.0.1::5432')
  })
})

describe('refusal rules', () => {
  it.each(['capture', 'feature-flags', 'web', 'proxy'])('refuses to switch off %s', (svc) => {
    expect(() => buildOverride(input({ disabled: off([svc]) }))).toThrow(UsageError)
  })
  it('refuses an unknown feature with the list of features', () => {
    expect(() => buildOverride(input({ disabled: off([], ['replays']) }))).toThrow(
      /not a feature: use session-replay/,
    )
  })
  it('refuses a service an enabled one needs healthy or completed', () => {
    expect(() => buildOverride(input({ disabled: off(['elasticsearch']) }))).toThrow(
      /temporal waits for it \(service_healthy\)/,
    )
    expect(() => buildOverride(input({ disabled: off(['kafka-init']) }))).toThrow(
      /service_completed_successfully/,
    )
  })
  it('allows it when every dependant is switched off too', () => {
    const r = buildOverride(input({ disabled: off(['kafka-init', 'property-defs-rs', 'cymbal']) }))
    expect(r.disabledServices).toContain('kafka-init')
  })
  it('switches off a helper that only switched-off services need, and says why', () => {
    const r = buildOverride(input({ disabled: off(['cymbal']) }))
    expect(r.disabledServices).toEqual(['cymbal', 'cymbal-resolution'])
    expect(r.plan.reasons['cymbal-resolution']).toBe('only served cymbal')
  })
  it('works on a small synthetic file', () => {
    const h = parseCompose(
      'services:\n  web:\n    image: x\n    depends_on: [db, extra]\n  db:\n    image: pg\n  extra:\n    image: e\n  needy:\n    image: n\n    depends_on:\n      extra:\n        condition: service_healthy\n',
    )
    expect(() => buildOverride(input({ hobby: h, base: undefined, disabled: off(['extra']) }))).toThrow(
      /needy waits/,
    )
    const r = buildOverride(input({ hobby: h, base: undefined, disabled: off(['extra', 'needy']) }))
    const o = load(r.yaml)
    expect(o.services.web.depends_on).toEqual({ db: { condition: 'service_started' } })
    expect(o.services.proxy).toBeUndefined()
  })
})

describe('clickhouseLogsConfig', () => {
  it('expires the system logs PostHog turns on and quiets the server log', () => {
    const xml = clickhouseLogsConfig()
    expect(xml).toMatch(/<level>warning<\/level>/)
    for (const t of ['query_log', 'part_log', 'trace_log', 'metric_log'])
      expect(xml).toContain(`<${t}>\n        <ttl>event_date + INTERVAL 7 DAY DELETE</ttl>\n    </${t}>`)
    // Naming a log PostHog's config leaves off would turn it on.
    expect(xml).not.toMatch(/text_log|processors_profile_log/)
  })
})

const upstream = upstreamPair()
describe.skipIf(!needShared('fixtures/posthog', "the override checks on PostHog's own compose files"))(
  "buildOverride on PostHog's own newest compose files",
  () => {
    const res = buildOverride(input({ ...upstream! }))
    const o = load(res.yaml)
    it('switches off each default feature whole (cymbal-resolution and ingestion-error-tracking too)', () => {
      expect(res.disabledServices.sort()).toEqual(
        [
          'cymbal',
          'cymbal-resolution',
          'ingestion-error-tracking',
          'livestream',
          'temporal-admin-tools',
          'temporal-ui',
        ].sort(),
      )
      expect(res.enabledServices).toHaveLength(38 - 6)
      expect(res.enabledServices).toEqual(
        expect.arrayContaining(['property-defs-rs', 'replay-capture', 'recording-api']),
      )
    })
    it('answers 404 on the routes to livestream and to the capture-ai service this version lacks', () => {
      const caddy: string = o.services.proxy.environment.CADDYFILE
      expect(caddy).toContain('respond "capture-ai is not part of this PostHog version" 404')
      expect(caddy).toContain('respond "livestream is switched off on this PostHog')
      expect(caddy).toContain('reverse_proxy capture:3000')
    })
    it('adds nothing upstream already bounds (its logging, its ZooKeeper purge)', () => {
      for (const s of res.enabledServices) expect(o.services[s]?.logging, s).toBeUndefined()
      expect(o.services.zookeeper?.environment).toBeUndefined()
      expect(o.services.plugins.environment.LOGS_REDIS_TLS).toBeUndefined()
    })
  },
)

describe('buildCaddyfile', () => {
  it('handles the upstream ${CADDY_HOST:-...} spelling and escapes other dollars', () => {
    const up =
      '{\n${CADDY_TLS_BLOCK:-}\n}\n${CADDY_HOST:-http://localhost:8000} {\n    header X-Cost $5\n    reverse_proxy web:8000\n}\n'
    const out = buildCaddyfile(up)
    expect(out).toContain('\nhttp:// {\n')
    expect(out).toContain('header X-Cost $$5')
    expect(out).toContain('trusted_proxies static private_ranges')
  })
  it('adds the global block when the base has none', () => {
    expect(buildCaddyfile('${DOMAIN} {\n  respond ok\n}\n')).toMatch(
      /^\{\n\s+auto_https off[\s\S]*\}\nhttp:\/\/ \{/,
    )
  })
  it('refuses a site address it does not know', () => {
    expect(() => buildCaddyfile(':80 {\n}\n')).toThrow(UsageError)
  })
  it('replaces a missing upstream, with or without an options block, by a 404 naming why', () => {
    const up =
      '${CADDY_HOST} {\n    handle @a {\n        reverse_proxy a:1 {\n            flush_interval -1\n        }\n    }\n    handle {\n        reverse_proxy web:8000\n    }\n}\n'
    const out = buildCaddyfile(up, (host) => (host === 'a' ? 'a is "off" here' : undefined))
    expect(out).toContain('        respond "a is off here" 404\n    }')
    expect(out).toContain('reverse_proxy web:8000')
  })
})
