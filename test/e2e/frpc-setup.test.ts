// scripts/frpc-setup.mts as a black box in a scratch root, with frp releases served on 127.0.0.1:
// the real frp 0.70.1 where ../shared has it, so the installed frpc itself verifies the config.
import fs from 'node:fs'
import path from 'node:path'
import { parse } from 'smol-toml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureTunnelIdentity } from '../../lib/tunnel/tunnel-identity.mts'
import { scratchDir } from '../helpers/common.ts'
import { needRealFrp, REAL_FRPC, runStep } from '../helpers/frp.ts'
import { buildRelease, type FakeRelease, releaseIsReal, serveDir } from '../helpers/frp-release.ts'

let releases: FakeRelease
let releaseRoot: string
needRealFrp('the frpc that frpc-setup installs (frp itself does not check the config)', 'stand-in used for')

// the installs hold the real frpc where ../shared has it: every scratch root goes at the end
const made: string[] = []
function scratchRoot(prefix: string): string {
  const dir = scratchDir(prefix)
  made.push(dir)
  return dir
}

beforeAll(async () => {
  releaseRoot = scratchRoot('frpc-setup-rel-')
  buildRelease(releaseRoot, '0.70.1')
  buildRelease(releaseRoot, '0.69.0', { corrupt: true })
  releases = await serveDir(releaseRoot)
})
afterAll(async () => {
  await releases.close()
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
})

function scratch(extraEnv: Record<string, string> = {}) {
  const root = scratchRoot('frpc-setup-')
  const envFile = path.join(root, 'home.env')
  const dirs = {
    install: path.join(root, 'usr/local/bin'),
    config: path.join(root, 'etc/frp'),
    log: path.join(root, 'var/log/frp'),
    systemd: path.join(root, 'etc/systemd/system'),
  }
  const env = {
    HOMELAB_ENV_FILE: envFile,
    FRP_RELEASE_BASE_URL: releases.baseUrl,
    FRP_SERVER_ADDR: '127.0.0.1',
    FRP_INSTALL_DIR: dirs.install,
    FRP_CONFIG_DIR: dirs.config,
    FRP_LOG_DIR: dirs.log,
    SYSTEMD_UNIT_DIR: dirs.systemd,
    FRP_SERVICE_MANAGER: 'none',
    ...extraEnv,
  }
  const token = () => /^FRP_TOKEN=(.*)$/m.exec(fs.readFileSync(envFile, 'utf8'))?.[1] ?? ''
  return { root, envFile, dirs, env, token }
}

const SCRIPT = 'scripts/frpc-setup.mts'

function mtimes(files: string[]): number[] {
  return files.map((f) => fs.statSync(f).mtimeMs)
}

describe('frpc-setup', () => {
  it('installs frpc, generates the token without printing it, writes a verified config and a unit', async () => {
    const s = scratch()
    const r = await runStep(SCRIPT, [], s.env)
    expect(r.code, r.out).toBe(0)
    const token = s.token()
    expect(token).toMatch(/^[0-9a-f]{48}$/)
    expect(r.out).not.toContain(token)
    expect(fs.statSync(s.envFile).mode & 0o777).toBe(0o600)
    expect(r.out).toMatch(/generated .*FRP_TOKEN.*not shown/)

    const configFile = path.join(s.dirs.config, 'frpc.toml')
    expect(fs.statSync(configFile).mode & 0o777).toBe(0o600)
    const cfg = parse(fs.readFileSync(configFile, 'utf8'))
    expect(cfg).toMatchObject({
      serverAddr: '127.0.0.1',
      serverPort: 7000,
      loginFailExit: false,
      auth: { method: 'token', token },
      transport: { tls: { enable: true } },
      log: { to: path.join(s.dirs.log, 'frpc.log'), disablePrintColor: true },
      proxies: [{ name: 'posthog', type: 'tcp', localIP: '127.0.0.1', localPort: 18000, remotePort: 12080 }],
    })
    expect(fs.readdirSync(s.dirs.config)).toEqual(['frpc.toml'])
    expect(r.out).not.toMatch(/verify rejected/)
    if (releaseIsReal('0.70.1'))
      expect(fs.readFileSync(path.join(s.dirs.install, 'frpc')).equals(fs.readFileSync(REAL_FRPC!))).toBe(
        true,
      )

    const unit = fs.readFileSync(path.join(s.dirs.systemd, 'frpc.service'), 'utf8')
    expect(unit).toContain(`ExecStart=${path.join(s.dirs.install, 'frpc')} -c ${configFile}`)
    expect(r.out).toMatch(
      /no systemd running here; to start the service run: systemctl daemon-reload && systemctl enable frpc.service/,
    )
    expect(r.out).toMatch(/--frps-ca/)
  })

  it('changes nothing on a re-run and downloads nothing', async () => {
    const s = scratch()
    expect((await runStep(SCRIPT, [], s.env)).code).toBe(0)
    const files = [
      path.join(s.dirs.install, 'frpc'),
      path.join(s.dirs.config, 'frpc.toml'),
      path.join(s.dirs.systemd, 'frpc.service'),
      s.envFile,
    ]
    const before = mtimes(files)
    const token = s.token()
    const requests = releases.requests.length
    await new Promise((r) => setTimeout(r, 20))
    const again = await runStep(SCRIPT, [], s.env)
    expect(again.code, again.out).toBe(0)
    expect(mtimes(files)).toEqual(before)
    expect(s.token()).toBe(token)
    expect(releases.requests.length).toBe(requests)
    expect(again.out).toMatch(/already installed/)
    expect(again.out).toMatch(/frpc\.toml is up to date/)
    expect(again.out).not.toContain(token)
    expect(fs.readdirSync(s.dirs.install)).toEqual(['frpc'])
  })

  it('pins the VPS identity with --frps-ca (trustedCaFile + serverName = DOMAIN)', async () => {
    const s = scratch({ DOMAIN: 'ph.example.com' })
    const id = await ensureTunnelIdentity({ dir: path.join(s.root, 'vps-tls'), serverName: 'ph.example.com' })
    const r = await runStep(SCRIPT, ['--frps-ca', id.caFile], s.env)
    expect(r.code, r.out).toBe(0)
    const caCopy = path.join(s.dirs.config, 'frps-ca.crt')
    expect(fs.readFileSync(caCopy, 'utf8')).toBe(fs.readFileSync(id.caFile, 'utf8'))
    const cfg = parse(fs.readFileSync(path.join(s.dirs.config, 'frpc.toml'), 'utf8'))
    expect(cfg).toHaveProperty('transport.tls', {
      enable: true,
      trustedCaFile: caCopy,
      serverName: 'ph.example.com',
    })
    expect(r.out).not.toContain(s.token())

    const configFile = path.join(s.dirs.config, 'frpc.toml')
    const before = fs.statSync(configFile).mtimeMs
    const again = await runStep(SCRIPT, [], s.env)
    expect(again.code, again.out).toBe(0)
    expect(again.out).toMatch(/keeping the pinned frps CA/)
    expect(fs.statSync(configFile).mtimeMs).toBe(before)
    expect(parse(fs.readFileSync(configFile, 'utf8'))).toHaveProperty('transport.tls.trustedCaFile', caCopy)
  })

  it('installs nothing and exits 1 on a checksum mismatch', async () => {
    const s = scratch({ FRP_VERSION: '0.69.0' })
    const r = await runStep(SCRIPT, [], s.env)
    expect(r.code).toBe(1)
    expect(r.out.trim().split('\n').at(-1)).toMatch(
      /^frpc-setup: error: checksum mismatch for frp_0\.69\.0_linux_amd64\.tar\.gz .*nothing was installed/,
    )
    expect(fs.existsSync(path.join(s.dirs.install, 'frpc'))).toBe(false)
    expect(fs.existsSync(path.join(s.dirs.config, 'frpc.toml'))).toBe(false)
    expect(fs.existsSync(path.join(s.dirs.systemd, 'frpc.service'))).toBe(false)
    expect(r.out).not.toContain(s.token())
  })

  it.runIf(process.getuid?.() === 0)(
    'run with sudo, leaves .env owned by the user who owns the project',
    async () => {
      const s = scratch()
      fs.chownSync(s.root, 65534, 65534)
      const r = await runStep(SCRIPT, [], s.env)
      expect(r.code, r.out).toBe(0)
      const st = fs.statSync(s.envFile)
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([65534, 65534, 0o600])
    },
  )

  it.each([
    ['an unknown flag', ['--bogus'], {}],
    ['a CA file that is not a certificate', ['--frps-ca', '/etc/hostname'], { DOMAIN: 'ph.example.com' }],
    ['--frps-ca without a domain', ['--frps-ca', '/etc/hostname'], {}],
    ['a remote port out of range', [], { FRP_REMOTE_PORT: '70000' }],
    ['a bad service manager', ['--service-manager', 'upstart'], {}],
    ['no VPS address', [], { FRP_SERVER_ADDR: '' }],
    ['frp older than 0.64.0 (no auth.tokenSource)', [], { FRP_VERSION: '0.63.0' }],
    ["a token with '{{' (frp reads frpc.toml as a Go template)", [], { FRP_TOKEN: `{{${'a'.repeat(40)}` }],
    ["'{{' in a path that goes into frpc.toml", ['--log-dir', '/tmp/{{x'], {}],
  ])('exits 2 with one line and installs nothing on %s', async (_what, args, extra) => {
    const s = scratch(extra as Record<string, string>)
    const r = await runStep(SCRIPT, args as string[], s.env)
    expect(r.code, r.out).toBe(2)
    expect(r.out.trim().split('\n')).toHaveLength(1)
    expect(fs.existsSync(s.dirs.install)).toBe(false)
    expect(fs.existsSync(s.dirs.config)).toBe(false)
  })
})
