// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseDocument } from 'yaml'
import { UsageError } from '../../lib/cli.mts'
import { parseCompose } from '../../lib/compose.mts'
import { buildCaddyfile, buildOverride, type OverrideInput } from '../../lib/override.mts'

const FIX = path.resolve(process.cwd(), '../shared/fixtures/posthog')
const hobby = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.hobby.yml'), 'utf8'))
const base = parseCompose(fs.readFileSync(path.join(FIX, 'docker-compose.base.yml'), 'utf8'))
const SEED_DISABLED =
  'temporal-ui,temporal-admin-tools,livestream,cymbal,replay-capture,cyclotron-janitor,property-defs-rs'.split(
    ',',
  )

const tags = (['!override', '!reset'] as const).flatMap((tag) =>
  (['seq', 'map'] as const).map((collection) => ({ tag, collection, resolve: (v: unknown) => v })),
)

function input(over: Partial<OverrideInput> = {}): OverrideInput {
  return {
    hobby,
    base,
    disabled: SEED_DISABLED,
    memoryLimits: { clickhouse: '2g', web: '1.5g', worker: '1.5g', elasticsearch: '512m' },
    proxyPort: 18000,
    worker: { concurrency: '1', maxTasksPerChild: '100', maxMemoryPerChild: '400000' },
    ...over,
  }
}

// biome-ignore lint/suspicious/noExplicitAny: test access to generated YAML
function load(yaml: string): any {
  const doc = parseDocument(yaml, { customTags: tags })
  expect(doc.errors).toEqual([])
  return doc.toJS()
}

describe('buildOverride against the fixture compose files', () => {
  const res = buildOverride(input())
  const o = load(res.yaml)

  it('switches off the defined services and skips unknown names with a notice', () => {
    for (const s of SEED_DISABLED.filter((s) => s !== 'cyclotron-janitor'))
      expect(o.services[s].deploy.replicas).toBe(0)
    expect(o.services['cyclotron-janitor']).toBeUndefined()
    expect(res.notices).toContain('cyclotron-janitor is not defined by this compose file; skipped')
    expect(res.disabledServices).toHaveLength(6)
    expect(res.enabledServices).toHaveLength(38 - 6)
  })
  it('drops plain dependencies on switched-off services with !override', () => {
    expect(res.yaml).toMatch(/depends_on: !override\n\s+web:\n\s+condition: service_started/)
    expect(o.services.proxy.depends_on).toEqual({ web: { condition: 'service_started' } })
  })
  it('publishes the proxy only on 127.0.0.1 with ports: !override', () => {
    expect(res.yaml).toContain('ports: !override')
    expect(o.services.proxy.ports).toEqual(['127.0.0.1:18000:80'])
  })
  it('gives Caddy plain HTTP for any host, no ACME, trusted private proxies, the base routes kept', () => {
    const caddy: string = o.services.proxy.environment.CADDYFILE
    expect(caddy).toMatch(/^\{\n\s+auto_https off\n\s+servers \{\n\s+trusted_proxies static private_ranges/)
    expect(caddy).toContain('\nhttp:// {\n')
    expect(caddy).toContain('reverse_proxy feature-flags:3001')
    expect(caddy).toContain('reverse_proxy capture:3000')
    expect(caddy).not.toContain('${')
    expect(caddy).not.toMatch(/acme/i)
  })
  it('caps memory for defined services only', () => {
    expect(o.services.clickhouse.deploy.resources.limits.memory).toBe('2g')
    expect(o.services.elasticsearch.deploy.resources.limits.memory).toBe('512m')
    const r = buildOverride(input({ memoryLimits: { nosuch: '1g' } }))
    expect(load(r.yaml).services.nosuch).toBeUndefined()
    expect(r.notices.join('\n')).toMatch(/MEMORY_LIMITS names nosuch/)
  })
  it('applies the pitfall fixes, each with its comment', () => {
    expect(o.services.plugins.environment).toMatchObject({
      SESSION_RECORDING_API_REDIS_HOST: 'redis7',
      SESSION_RECORDING_API_REDIS_PORT: '6379',
      SES_REGION: 'us-east-1',
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
  it('is deterministic', () => {
    expect(buildOverride(input()).yaml).toBe(res.yaml)
  })
})

describe('refusal rules', () => {
  it.each(['capture', 'feature-flags', 'web'])('refuses to switch off %s', (svc) => {
    expect(() => buildOverride(input({ disabled: [svc] }))).toThrow(UsageError)
  })
  it('refuses a service an enabled one needs healthy or completed', () => {
    expect(() => buildOverride(input({ disabled: ['elasticsearch'] }))).toThrow(
      /temporal waits for it \(service_healthy\)/,
    )
    expect(() => buildOverride(input({ disabled: ['kafka-init'] }))).toThrow(/service_completed_successfully/)
  })
  it('allows it when every dependant is switched off too', () => {
    const r = buildOverride(
      input({ disabled: ['kafka-init', 'property-defs-rs', 'property-defs-ai', 'cymbal'] }),
    )
    expect(r.disabledServices).toContain('kafka-init')
  })
  it('works on a small synthetic file', () => {
    const h = parseCompose(
      'services:\n  web:\n    image: x\n    depends_on: [db, extra]\n  db:\n    image: pg\n  extra:\n    image: e\n  needy:\n    image: n\n    depends_on:\n      extra:\n        condition: service_healthy\n',
    )
    expect(() => buildOverride(input({ hobby: h, base: undefined, disabled: ['extra'] }))).toThrow(
      /needy waits/,
    )
    const r = buildOverride(input({ hobby: h, base: undefined, disabled: ['extra', 'needy'] }))
    const o = load(r.yaml)
    expect(o.services.web.depends_on).toEqual({ db: { condition: 'service_started' } })
    expect(o.services.proxy).toBeUndefined()
  })
})

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
})
