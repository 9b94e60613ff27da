import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RuntimeFailure, UsageError } from '../../../lib/core/cli.mts'
import { parseChecksums } from '../../../lib/core/download.mts'
import { buildSystemdUnit, detectServiceManager, systemdWord } from '../../../lib/core/service.mts'
import { frpcLaunchDaemon, frpsUnit } from '../../../lib/tunnel/frp-service.mts'
import {
  assetName,
  frpTarget,
  installFrp,
  installFrpBinary,
  releaseUrls,
} from '../../../lib/tunnel/release.mts'
import { scratchDir } from '../../helpers/common.ts'
import { buildRelease, type FakeRelease, serveDir } from '../../helpers/frp-release.ts'

describe('release naming', () => {
  it('maps node platform/arch to frp asset names', () => {
    expect(assetName('0.70.1', 'darwin', 'arm64')).toBe('frp_0.70.1_darwin_arm64.tar.gz')
    expect(assetName('0.70.1', 'linux', 'x64')).toBe('frp_0.70.1_linux_amd64.tar.gz')
    expect(frpTarget('linux', 'arm')).toBe('linux_arm')
    expect(() => frpTarget('win32', 'x64')).toThrow(UsageError)
    expect(() => frpTarget('linux', 'ia32')).toThrow(UsageError)
  })
  it('builds the GitHub release URLs', () => {
    expect(releaseUrls('https://github.com/fatedier/frp/releases/download/', '0.70.1', 'a.tar.gz')).toEqual({
      archive: 'https://github.com/fatedier/frp/releases/download/v0.70.1/a.tar.gz',
      checksums: 'https://github.com/fatedier/frp/releases/download/v0.70.1/frp_sha256_checksums.txt',
    })
  })
  it('parses sha256sum lines and ignores the rest', () => {
    const a = 'A'.repeat(64)
    const b = 'b'.repeat(64)
    const sums = parseChecksums(
      `${a}  frp_1_linux_amd64.tar.gz\n${b} *frp_1_darwin_arm64.tar.gz\n\ngarbage line\n`,
    )
    expect([...sums]).toEqual([
      ['frp_1_linux_amd64.tar.gz', 'a'.repeat(64)],
      ['frp_1_darwin_arm64.tar.gz', b],
    ])
  })
})

describe('installFrp against a local release server', () => {
  let root: string
  let server: FakeRelease
  const quick = { backoffMs: () => 10 }
  // the release holds the real frp (37 MB) where ../shared has it: leave no copies behind
  const made: string[] = []
  const scratch = (prefix: string) => {
    const dir = scratchDir(prefix)
    made.push(dir)
    return dir
  }
  beforeAll(async () => {
    root = scratch('frp-rel-')
    buildRelease(root, '0.70.1')
    buildRelease(root, '0.69.0', { corrupt: true })
    server = await serveDir(root)
  })
  afterAll(async () => {
    await server.close()
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('installs, then skips when the binary already reports the version', async () => {
    const installDir = scratch('frp-bin-')
    const o = { version: '0.70.1', baseUrl: server.baseUrl, installDir, binaries: ['frpc' as const] }
    expect((await installFrp(o)).result).toBe('installed')
    expect(fs.statSync(path.join(installDir, 'frpc')).mode & 0o777).toBe(0o755)
    const before = server.requests.length
    expect((await installFrp(o)).result).toBe('unchanged')
    expect(server.requests.length).toBe(before)
    expect(fs.readdirSync(installDir)).toEqual(['frpc'])
  })

  it('installs one binary and says whether it is new', async () => {
    const installDir = scratch('frp-bin-')
    const said: string[] = []
    const o = { version: '0.70.1', baseUrl: server.baseUrl, installDir }
    const bin = path.join(installDir, 'frps')
    expect(await installFrpBinary('frps', o, (l) => said.push(l))).toEqual({ bin, installed: true })
    expect(said.at(-1)).toBe(`installed frps 0.70.1 at ${bin}`)
    expect(await installFrpBinary('frps', o, (l) => said.push(l))).toEqual({ bin, installed: false })
    expect(said.at(-1)).toBe('frps 0.70.1 already installed')
  })

  it('refuses a checksum mismatch and leaves the installed binary alone', async () => {
    const installDir = scratch('frp-bin-')
    fs.writeFileSync(path.join(installDir, 'frps'), '#!/bin/sh\necho 0.60.0\n', { mode: 0o755 })
    const o = { version: '0.69.0', baseUrl: server.baseUrl, installDir, binaries: ['frps' as const] }
    await expect(installFrp(o)).rejects.toThrow(/checksum mismatch .*nothing was installed/)
    expect(fs.readFileSync(path.join(installDir, 'frps'), 'utf8')).toContain('0.60.0')
    expect(fs.readdirSync(installDir)).toEqual(['frps'])
  })

  it('does not retry a 404 and says what to check', async () => {
    const installDir = scratch('frp-bin-')
    const before = server.requests.length
    const p = installFrp({
      version: '9.9.9',
      baseUrl: server.baseUrl,
      installDir,
      binaries: ['frpc'],
      download: quick,
    })
    await expect(p).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(p).rejects.toThrow(/HTTP 404/)
    expect(server.requests.length - before).toBe(1)
  })

  it('retries a refused connection, then fails with one line', async () => {
    const p = installFrp({
      version: '0.70.1',
      baseUrl: 'http://127.0.0.1:1',
      installDir: scratch('frp-bin-'),
      binaries: ['frpc'],
      download: quick,
    })
    await expect(p).rejects.toThrow(
      /could not download http:\/\/127\.0\.0\.1:1\/v0\.70\.1\/frp_sha256_checksums\.txt/,
    )
  })
})

describe('service files', () => {
  it('frps runs as its own user, verifies its config first and is hardened', () => {
    const unit = frpsUnit({
      binPath: '/usr/local/bin/frps',
      configFile: '/etc/frp/frps.toml',
      logDir: '/var/log/frp',
    })
    for (const line of [
      'User=frps',
      'ExecStartPre=/usr/local/bin/frps verify -c /etc/frp/frps.toml',
      'ExecStart=/usr/local/bin/frps -c /etc/frp/frps.toml',
      'Restart=on-failure',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'ReadWritePaths=/var/log/frp',
      'WantedBy=multi-user.target',
    ])
      expect(unit.split('\n')).toContain(line)
  })
  it('quotes and escapes unit words, and refuses newlines', () => {
    expect(systemdWord('/opt/my dir/frpc')).toBe('"/opt/my dir/frpc"')
    expect(systemdWord('100%')).toBe('100%%')
    expect(() =>
      buildSystemdUnit({
        description: 'x\nExecStart=/bin/evil',
        execStart: ['/bin/true'],
        readWritePaths: [],
      }),
    ).toThrow()
    expect(() => buildSystemdUnit({ description: 'x', execStart: ['frpc'], readWritePaths: [] })).toThrow(
      /absolute/,
    )
  })
  it('the frpc LaunchDaemon starts at load and is kept alive, with escaped paths', () => {
    const plist = frpcLaunchDaemon({
      binPath: '/usr/local/bin/frpc',
      configFile: '/usr/local/etc/frp/a&b.toml',
      logDir: '/usr/local/var/log/frp',
    })
    expect(plist).toMatch(/<key>RunAtLoad<\/key>\s*<true\/>/)
    expect(plist).toMatch(/<key>KeepAlive<\/key>\s*<true\/>/)
    expect(plist).toContain('<string>/usr/local/etc/frp/a&amp;b.toml</string>')
    expect(plist).toContain('<string>dev.posthog-homelab.frpc</string>')
  })
  it('the frpc LaunchDaemon keeps stdout and stderr in separate files', () => {
    const plist = frpcLaunchDaemon({
      binPath: '/usr/local/bin/frpc',
      configFile: '/usr/local/etc/frp/frpc.toml',
      logDir: '/usr/local/var/log/frp',
    })
    const value = (key: string) =>
      new RegExp(`<key>${key}</key>\\s*<string>([^<]*)</string>`).exec(plist)?.[1]
    expect(value('StandardOutPath')).toBe('/usr/local/var/log/frp/frpc.stdout.log')
    expect(value('StandardErrorPath')).toBe('/usr/local/var/log/frp/frpc.stderr.log')
  })
  it('picks the service manager from the platform', () => {
    expect(detectServiceManager('auto', 'darwin')).toBe('launchd')
    expect(detectServiceManager('auto', 'linux', '/nonexistent')).toBe('none')
    expect(detectServiceManager('none', 'linux')).toBe('none')
    expect(() => detectServiceManager('upstart')).toThrow(UsageError)
  })
})
