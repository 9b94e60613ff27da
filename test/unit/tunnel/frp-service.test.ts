// applyService: which systemctl/launchctl commands run when. systemd and launchd cannot run in CI,
// so `systemctl`/`launchctl` are shims first on PATH that record their arguments; FAKE_SVC_UP=1
// makes `is-active`/`is-enabled`/`launchctl print` succeed.
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { downloadProgress } from '../../../lib/core/download.mts'
import { applyService } from '../../../lib/core/service.mts'
import { scratchDir } from '../../helpers/common.ts'

let dir: string
let calls: string
const savedPath = process.env.PATH

beforeEach(() => {
  dir = scratchDir('frp-svc-')
  calls = path.join(dir, 'calls.log')
  for (const bin of ['systemctl', 'launchctl'])
    fs.writeFileSync(
      path.join(dir, bin),
      [
        '#!/usr/bin/env bash',
        `echo "${bin} $*" >> ${calls}`,
        'case "$1" in is-active|is-enabled|print) [ "$FAKE_SVC_UP" = 1 ] ;; *) exit 0 ;; esac',
        '',
      ].join('\n'),
      { mode: 0o755 },
    )
  process.env.PATH = `${dir}:${savedPath}`
})
afterEach(() => {
  process.env.PATH = savedPath
  delete process.env.FAKE_SVC_UP
})

const recorded = () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : [])
const lines: string[] = []
const base = () => ({
  name: 'frps.service',
  file: path.join(dir, 'units/frps.service'),
  content: '[Unit]\n',
  restart: false,
  say: (l: string) => lines.push(l),
})

describe('applyService with systemd', () => {
  it('a new unit: daemon-reload, enable, restart', async () => {
    expect(await applyService({ ...base(), manager: 'systemd', kind: 'systemd' })).toBe('started')
    expect(recorded()).toEqual([
      'systemctl is-active --quiet frps.service',
      'systemctl is-enabled --quiet frps.service',
      'systemctl daemon-reload',
      'systemctl enable frps.service',
      'systemctl restart frps.service',
    ])
  })
  it('running and unchanged: nothing but the two checks', async () => {
    await applyService({ ...base(), manager: 'systemd', kind: 'systemd' })
    fs.rmSync(calls)
    process.env.FAKE_SVC_UP = '1'
    expect(await applyService({ ...base(), manager: 'systemd', kind: 'systemd' })).toBe('unchanged')
    expect(recorded()).toEqual([
      'systemctl is-active --quiet frps.service',
      'systemctl is-enabled --quiet frps.service',
    ])
  })
  it('running, unit unchanged, config changed: restart without daemon-reload', async () => {
    await applyService({ ...base(), manager: 'systemd', kind: 'systemd' })
    fs.rmSync(calls)
    process.env.FAKE_SVC_UP = '1'
    expect(await applyService({ ...base(), restart: true, manager: 'systemd', kind: 'systemd' })).toBe(
      'restarted',
    )
    expect(recorded()).not.toContain('systemctl daemon-reload')
    expect(recorded()).toContain('systemctl restart frps.service')
  })
})

describe('applyService with launchd', () => {
  const daemon = () => ({
    ...base(),
    name: 'dev.posthog-homelab.frpc',
    file: path.join(dir, 'LaunchDaemons/x.plist'),
  })
  it('not loaded: bootstrap and enable', async () => {
    const d = daemon()
    expect(await applyService({ ...d, manager: 'launchd', kind: 'launchd' })).toBe('started')
    expect(recorded()).toEqual([
      'launchctl print system/dev.posthog-homelab.frpc',
      `launchctl bootstrap system ${d.file}`,
      'launchctl enable system/dev.posthog-homelab.frpc',
    ])
  })
  it('loaded, plist unchanged, config changed: kickstart -k', async () => {
    await applyService({ ...daemon(), manager: 'launchd', kind: 'launchd' })
    fs.rmSync(calls)
    process.env.FAKE_SVC_UP = '1'
    expect(await applyService({ ...daemon(), restart: true, manager: 'launchd', kind: 'launchd' })).toBe(
      'restarted',
    )
    expect(recorded()).toEqual([
      'launchctl print system/dev.posthog-homelab.frpc',
      'launchctl kickstart -k system/dev.posthog-homelab.frpc',
    ])
  })
  it('none: writes the file and prints the commands, runs nothing', async () => {
    expect(await applyService({ ...daemon(), manager: 'none', kind: 'launchd' })).toBe('printed')
    expect(recorded()).toEqual([])
    expect(lines.at(-1)).toMatch(/launchctl bootstrap system .*x\.plist && launchctl enable/)
  })
})

describe('downloadProgress', () => {
  it('writes a plain line at most every 30 s without a TTY, and a live line on one', () => {
    const out: string[] = []
    const stream = { write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream
    const plain = downloadProgress('downloading x', stream, false)
    plain.progress(1024 * 1024, 0)
    expect(out).toEqual([])
    const live = downloadProgress('downloading x', stream, true)
    const now = Date.now()
    const realNow = Date.now
    Date.now = () => now + 2000
    try {
      live.progress(5 * 1024 * 1024, 10 * 1024 * 1024)
    } finally {
      Date.now = realNow
    }
    live.done()
    expect(out).toEqual(['\r\x1b[2Kdownloading x: 5.0 MB of 10.0 MB', '\r\x1b[2K'])
  })
})
