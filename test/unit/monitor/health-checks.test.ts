import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { DEFAULT_DISK_THRESHOLDS } from '../../../lib/core/disk.mts'
import { mergeEnv, toConfig } from '../../../lib/core/env.mts'
import { type HealthFlags, healthSettings } from '../../../lib/monitor/health-checks.mts'
import { scratchDir } from '../../helpers/common.ts'

function config(values: Record<string, string> = {}) {
  const root = scratchDir('health-settings-')
  const raw = mergeEnv(
    {
      POSTHOG_SECRET: 's'.repeat(56),
      ENCRYPTION_SALT_KEYS: 'k'.repeat(32),
      POSTHOG_APP_TAG: 'v1',
      ...values,
    },
    {},
  )
  return toConfig(root, path.join(root, '.env'), raw)
}

const flags = (more: Partial<HealthFlags> = {}): HealthFlags => ({
  timeout: '20s',
  'disk-warning': '15%,10GiB',
  'disk-critical': '5%,3GiB',
  heal: false,
  ...more,
})

describe('health settings', () => {
  it('defaults to the local proxy, the state file in STACK_DIR and no public URL for localhost', () => {
    const cfg = config({ DOMAIN: 'localhost', POSTHOG_PROXY_HTTP_PORT: '18001' })
    const s = healthSettings(flags(), cfg)
    expect(s).toMatchObject({
      stackDir: cfg.stackDir,
      runMs: 20_000,
      stateFile: path.join(cfg.stackDir, 'health-state.json'),
      localUrl: 'http://127.0.0.1:18001/_health',
      publicUrl: undefined,
      ca: undefined,
      disk: DEFAULT_DISK_THRESHOLDS,
      heal: false,
      notify: { url: undefined, format: 'json', remindHours: 6 },
    })
  })

  it('checks https://DOMAIN/_health for a public domain; flags win over the defaults', () => {
    const cfg = config({ DOMAIN: 'ph.example.com', HEALTH_WEBHOOK_FORMAT: 'text', HEALTH_REMIND_HOURS: '2' })
    expect(healthSettings(flags(), cfg).publicUrl).toBe('https://ph.example.com/_health')
    const s = healthSettings(
      flags({ 'public-url': 'https://other.example.com/_health', 'state-file': 'state.json', heal: true }),
      cfg,
    )
    expect(s.publicUrl).toBe('https://other.example.com/_health')
    expect(s.stateFile).toBe(path.resolve('state.json'))
    expect(s.heal).toBe(true)
    expect(s.notify).toMatchObject({ format: 'text', remindHours: 2 })
  })

  it('refuses a bad --timeout, URL or disk threshold', () => {
    const cfg = config()
    expect(() => healthSettings(flags({ timeout: 'soon' }), cfg)).toThrow(/^--timeout=soon is not a duration/)
    expect(() => healthSettings(flags({ 'local-url': '127.0.0.1:18000/_health' }), cfg)).toThrow(
      /^--local-url=127.0.0.1:18000\/_health must be an http\(s\) URL/,
    )
    expect(() => healthSettings(flags({ 'disk-warning': '15%,lots' }), cfg)).toThrow(UsageError)
  })
})
