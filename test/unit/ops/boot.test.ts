// The boot job's builders: the systemd unit (escaping of odd checkout paths), the LaunchAgent,
// and the name systemd runs `up` as.
import { describe, expect, it } from 'vitest'
import {
  BOOT_LABEL,
  type BootJob,
  bootLaunchAgent,
  bootSystemdUnit,
  ownerName,
} from '../../../lib/ops/boot.mts'
import { parsePlist } from '../../helpers/plist.ts'

const job: BootJob = {
  root: '/home/ann/my 100% homelab',
  node: '/usr/local/bin/node',
  loader: '/home/ann/my 100% homelab/node_modules/tsx/dist/loader.mjs',
  environment: { PATH: '/usr/local/bin:/usr/bin:/bin', DOCKER_BIN: '/opt/docker "beta"/docker' },
}

describe('boot job', () => {
  it('quotes and escapes a checkout path with spaces and % in every line of the unit', () => {
    const unit = bootSystemdUnit(job, { user: 'ann', dockerUnit: 'docker.service', startTimeoutSec: 5400 })
    const lines = unit.split('\n')
    expect(lines).toContain('WorkingDirectory=/home/ann/my 100%% homelab')
    expect(lines).toContain(
      'ExecStart=/usr/local/bin/node --import "/home/ann/my 100%% homelab/node_modules/tsx/dist/loader.mjs" "/home/ann/my 100%% homelab/scripts/up.mts"',
    )
    expect(lines).toContain('Environment="PATH=/usr/local/bin:/usr/bin:/bin"')
    expect(lines).toContain('Environment="DOCKER_BIN=/opt/docker \\"beta\\"/docker"')
    expect(lines).toContain('User=ann')
    expect(() =>
      bootSystemdUnit(
        { ...job, root: '/x\nExecStartPost=/bin/evil' },
        {
          user: 'ann',
          dockerUnit: 'docker.service',
          startTimeoutSec: 60,
        },
      ),
    ).toThrow(/cannot appear in a systemd unit/)
  })

  it('passes a non-default env file on, in both jobs', () => {
    const withEnv = { ...job, envFile: '/etc/posthog.env' }
    const unit = bootSystemdUnit(withEnv, { user: 'ann', dockerUnit: 'docker.service', startTimeoutSec: 60 })
    expect(unit).toMatch(/^ExecStart=.*scripts\/up\.mts" --env-file \/etc\/posthog\.env$/m)
    const plist = parsePlist(
      bootLaunchAgent(withEnv, { logFile: '/tmp/b&b.log', dockerWait: '5m' }),
    ) as Record<string, unknown>
    expect(plist.Label).toBe(BOOT_LABEL)
    expect((plist.ProgramArguments as string[]).slice(-5)).toEqual([
      '--run',
      '--docker-wait',
      '5m',
      '--env-file',
      '/etc/posthog.env',
    ])
    expect(plist.StandardOutPath).toBe('/tmp/b&b.log')
    expect(plist.EnvironmentVariables).toEqual(job.environment)
    expect(plist).not.toHaveProperty('KeepAlive')
    expect(plist).not.toHaveProperty('StartInterval')
  })

  it('runs up as the checkout owner, by name when known, else by uid', () => {
    const passwd = 'root:x:0:0:root:/root:/bin/bash\nann:x:1000:1000:Ann:/home/ann:/bin/zsh\n'
    expect(ownerName(1000, passwd)).toBe('ann')
    expect(ownerName(0, passwd)).toBe('root')
    expect(ownerName(1001, passwd)).toBe('1001')
    expect(ownerName(1000, undefined)).toBe('1000')
  })
})
