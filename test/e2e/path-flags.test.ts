// Every path flag refuses a line break or '$' before the script does anything: such a path would
// end up in a systemd unit, a plist, a crontab line or a config file it cannot be written into
// safely (frps-setup used to write its config and TLS files first, then fail, or put $$ into
// ReadWritePaths=). The check is generic (lib/core/cli.mts, `path: true` on the flag).
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT, runProcess, scratchDir, TSX } from '../helpers/common.ts'

const CASES: [script: string, flag: string, value: string, exit: number][] = [
  ['remote/frps-setup.mts', '--log-dir', '/var/log/frp\nExecStartPre=/bin/sh', 2],
  ['remote/certbot.mts', '--logs-dir', '/var/log/$USER', 2],
  ['scripts/frpc-setup.mts', '--config-dir', '/etc/frp\n', 2],
  ['scripts/schedule.mts', '--log-file', '/tmp/$(id)/health.log', 2],
  ['scripts/doctor.mts', '--log-file', '/var/log/nginx/error.log\n', 2],
  ['scripts/restore.mts', '--from', '/backups/$(date)', 2],
  // A monitoring check says UNKNOWN (exit 3) about what it cannot judge, bad input included.
  ['scripts/health.mts', '--state-file', '/tmp/state\n.json', 3],
]

describe('path flags', () => {
  it.each(CASES)('%s %s refuses a line break or $ and writes nothing', async (script, flag, value, exit) => {
    const dir = scratchDir('path-flags-')
    const res = await runProcess(process.execPath, ['--import', TSX, path.join(ROOT, script), flag, value], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: dir },
      timeoutMs: 60_000,
    })
    expect(res.code, res.stderr + res.stdout).toBe(exit)
    // One line; a monitoring check's is the first line of its report: POSTHOG UNKNOWN - ...
    const said = exit === 3 ? res.stdout.split('\n')[0]! : res.stderr.trim()
    if (exit === 3) expect(said).toMatch(/^POSTHOG UNKNOWN - health: /)
    else expect(said.split('\n')).toHaveLength(1)
    expect(said).toContain(`${flag}=${JSON.stringify(value)} holds a line break or '$'`)
    expect(fs.readdirSync(dir)).toEqual([])
  })
})
