import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { HEALTH_BUNDLE, healthCronEntry, healthSchedule } from '../../../lib/monitor/health-schedule.mts'

const machine = { node: '/usr/bin/node', env: () => ({ PATH: '/usr/local/bin:/usr/bin:/bin' }) }
const options = {
  root: '/srv/posthog-homelab',
  logFile: 'logs/health.log',
  logMaxMb: '5',
  envFile: '/srv/posthog-homelab/.env',
  every: '10m',
  heal: false,
}

describe('the health check’s schedule', () => {
  it('runs the bundle with the log rotated and the env file given, from the repository', () => {
    const p = healthSchedule(options, machine)
    expect(p).toEqual({
      root: '/srv/posthog-homelab',
      node: '/usr/bin/node',
      log: '/srv/posthog-homelab/logs/health.log',
      minutes: 10,
      healthArgs: [
        HEALTH_BUNDLE,
        '--rotate-log',
        '/srv/posthog-homelab/logs/health.log',
        '--log-max-mb',
        '5',
        '--env-file',
        '/srv/posthog-homelab/.env',
      ],
      env: { PATH: '/usr/local/bin:/usr/bin:/bin' },
    })
    expect(healthCronEntry(p)).toBe(
      '*/10 * * * * cd /srv/posthog-homelab && PATH=/usr/local/bin:/usr/bin:/bin /usr/bin/node dist/health.mjs --rotate-log /srv/posthog-homelab/logs/health.log --log-max-mb 5 --env-file /srv/posthog-homelab/.env >> /srv/posthog-homelab/logs/health.log 2>&1',
    )
  })

  it('passes --heal on, keeps an absolute log where it is, and refuses bad sizes and intervals', () => {
    const p = healthSchedule({ ...options, heal: true, logFile: '/var/log/ph.log' }, machine)
    expect(p.healthArgs.at(-1)).toBe('--heal')
    expect(p.log).toBe(path.resolve('/var/log/ph.log'))
    expect(() => healthSchedule({ ...options, logMaxMb: '0' }, machine)).toThrow(
      '--log-max-mb=0 must be a number above 0',
    )
    expect(() => healthSchedule({ ...options, every: '7m' }, machine)).toThrow(/--every=7m must divide/)
  })
})
