import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { DEFAULT_DISK_THRESHOLDS, type DiskSpace } from '../../../lib/core/disk.mts'
import { mergeEnv, toConfig } from '../../../lib/core/env.mts'
import { CommandFailed } from '../../../lib/core/exec.mts'
import { diskChecksFor, diskThresholds } from '../../../lib/monitor/disk-check.mts'
import { type HealthFlags, healthSettings } from '../../../lib/monitor/health-checks.mts'
import { notifySettings } from '../../../lib/monitor/notify.mts'
import { dockerUnanswered, planHeals, servicesCheck } from '../../../lib/monitor/services-check.mts'
import type { ServiceProblem } from '../../../lib/stack/containers.mts'
import { scratchDir } from '../../helpers/common.ts'

const GiB = 1024 ** 3

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

  it('reads the notification settings', () => {
    expect(notifySettings({ HEALTH_WEBHOOK_URL: '', HEALTH_REMIND_HOURS: '6' }, undefined)).toEqual({
      url: undefined,
      format: 'json',
      remindHours: 6,
      ca: undefined,
    })
    expect(
      notifySettings(
        { HEALTH_WEBHOOK_URL: 'https://ntfy.sh/x', HEALTH_WEBHOOK_FORMAT: 'text', HEALTH_REMIND_HOURS: '1' },
        'PEM',
      ),
    ).toEqual({ url: 'https://ntfy.sh/x', format: 'text', remindHours: 1, ca: 'PEM' })
  })
})

describe('the services check', () => {
  const problem = (service: string, kind: ServiceProblem['kind'], healable = true): ServiceProblem => ({
    service,
    kind,
    text: `${service} ${kind}`,
    healable,
  })

  it('is CRITICAL unless every problem only warns, and marks what --heal restarted', () => {
    expect(servicesCheck([], 9, [])).toEqual({ name: 'services', status: 'OK', summary: '9 running' })
    expect(servicesCheck([problem('worker', 'restarts-growing', false)], 9, []).status).toBe('WARNING')
    expect(servicesCheck([problem('es', 'oom-killed', false)], 9, []).status).toBe('WARNING')
    const c = servicesCheck([problem('worker', 'exited'), problem('es', 'oom-killed', false)], 8, ['worker'])
    expect(c).toEqual({
      name: 'services',
      status: 'CRITICAL',
      summary: 'worker exited (restarted by --heal); es oom-killed',
    })
  })

  it('heals each healable service once an hour: up for a missing one, restart otherwise', () => {
    const now = Date.parse('2026-11-25T12:00:00Z')
    const problems = [
      problem('worker', 'exited'),
      problem('worker', 'unhealthy'),
      problem('capture', 'missing'),
      problem('db', 'unhealthy'),
      problem('plugins', 'restarts-growing', false),
    ]
    const heals = { db: ['2026-11-25T11:30:00.000Z'], capture: ['2026-11-25T10:00:00.000Z'] }
    expect(planHeals(problems, heals, now)).toEqual([
      { service: 'worker', verb: 'restart' },
      { service: 'capture', verb: 'up' },
      { service: 'db', restartedAt: '2026-11-25T11:30:00.000Z' },
    ])
  })

  it('is UNKNOWN with docker’s last line when docker does not answer', () => {
    const failed = new CommandFailed({
      argv: ['docker', 'info'],
      exitCode: 1,
      signal: null,
      stdout: '',
      stderr: 'warning\nCannot connect to the Docker daemon\n',
      ok: false,
      timedOut: false,
      durationMs: 5,
    })
    expect(dockerUnanswered('services', failed)).toEqual({
      name: 'services',
      status: 'UNKNOWN',
      summary: 'docker does not answer: Cannot connect to the Docker daemon',
    })
    expect(dockerUnanswered('docker-disk', new Error('spawn docker ENOENT')).summary).toBe(
      'docker does not answer: spawn docker ENOENT',
    )
  })
})

describe('the disk checks', () => {
  const t = diskThresholds({ 'disk-warning': '15%,10GiB', 'disk-critical': '5%,3GiB' })
  const space = (freeGiB: number): DiskSpace => ({ free: freeGiB * GiB, total: 100 * GiB })

  it('reads --disk-warning and --disk-critical', () => {
    expect(t).toEqual(DEFAULT_DISK_THRESHOLDS)
    expect(() => diskThresholds({ 'disk-warning': 'lots', 'disk-critical': '5%' })).toThrow(/--disk-warning/)
  })

  it('checks STACK_DIR and Docker’s data apart when they are on different disks', () => {
    const dir = scratchDir('disk-check-')
    const checks = diskChecksFor(dir, space(8), { rootDir: '/nonexistent-docker-root', desktop: false }, t)
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['stack-disk', 'WARNING'],
      ['docker-disk', 'UNKNOWN'],
    ])
    expect(checks[0]!.summary).toMatch(/on .*: free some \(npx tsx scripts\/doctor.mts names/)
  })

  it('makes one check of a shared disk, and says when docker does not answer', () => {
    const dir = scratchDir('disk-check-')
    const shared = diskChecksFor(dir, space(50), { rootDir: dir, desktop: false }, t)
    expect(shared.map((c) => [c.name, c.status])).toEqual([['disk', 'OK']])
    expect(shared[0]!.summary).toMatch(/ and STACK_DIR$/)
    const noDocker = diskChecksFor(dir, space(2), new Error('timed out after 10 s'), t)
    expect(noDocker).toEqual([
      expect.objectContaining({ name: 'stack-disk', status: 'CRITICAL' }),
      { name: 'docker-disk', status: 'UNKNOWN', summary: 'docker does not answer: timed out after 10 s' },
    ])
  })
})
