// remote/frps-setup.mts as a black box in a scratch root: frp releases served on 127.0.0.1 (the
// real frp 0.70.1 where ../shared has it), a private real nginx, ufw replaced through UFW_BIN (a
// script that records its arguments), no systemd (service manager `none`). Ends with the tunnel
// run from the installed real binaries and files, with frpc-setup's config pinned to the CA
// frps-setup made. The site with a certificate, and its migration: public-path.test.ts.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { parse } from 'smol-toml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, httpGet, listenLocal, scratchDir } from '../helpers/common.ts'
import {
  listeningAddresses,
  needRealFrp,
  REAL_FRPS,
  type RunningFrp,
  runStep,
  startFrp,
  waitForLog,
} from '../helpers/frp.ts'
import { buildRelease, type FakeRelease, releaseIsReal, serveDir } from '../helpers/frp-release.ts'
import { hasBinary, makeNginx, type Nginx } from '../helpers/public-path.ts'

const SCRIPT = 'remote/frps-setup.mts'
const TOKEN = 'feedface'.repeat(5)
const DOMAIN = 'ph.posthog.test'
const canRunNginx = hasBinary('nginx') && process.getuid?.() === 0
const haveFrp = needRealFrp('the tunnel run from the installed frps (the setup itself runs with a stand-in)')

let releases: FakeRelease
let nginx: Nginx | undefined
const running: RunningFrp[] = []
const outputs: string[] = []

// the installs hold the real frp where ../shared has it: every scratch root goes at the end
const made: string[] = []
function scratchRoot(prefix: string): string {
  const dir = scratchDir(prefix)
  made.push(dir)
  return dir
}

beforeAll(async () => {
  const root = scratchRoot('frps-setup-rel-')
  buildRelease(root, '0.70.1')
  buildRelease(root, '0.69.0', { corrupt: true })
  releases = await serveDir(root)
})
afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()))
  nginx?.stop()
  await releases.close()
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true })
})

function scratch(extra: Record<string, string> = {}) {
  const root = scratchRoot('frps-setup-')
  const dirs = {
    install: path.join(root, 'usr/local/bin'),
    config: path.join(root, 'etc/frp'),
    log: path.join(root, 'var/log/frp'),
    systemd: path.join(root, 'etc/systemd/system'),
  }
  const ufwLog = path.join(root, 'ufw.log')
  const ufw = path.join(root, 'ufw')
  fs.writeFileSync(
    ufw,
    `#!/usr/bin/env bash\necho "$*" >> ${ufwLog}\n[ "$1" = status ] && echo "Status: active" || echo "Rule added"\n`,
    { mode: 0o755 },
  )
  const env: Record<string, string> = {
    DOMAIN,
    FRP_RELEASE_BASE_URL: releases.baseUrl,
    FRP_INSTALL_DIR: dirs.install,
    FRP_CONFIG_DIR: dirs.config,
    FRP_LOG_DIR: dirs.log,
    SYSTEMD_UNIT_DIR: dirs.systemd,
    FRP_SERVICE_MANAGER: 'none',
    UFW_BIN: ufw,
    FRPS_SKIP_NGINX: '1',
    ACME_WEBROOT: path.join(root, 'var/www/acme'),
    // never the machine's own nginx: tests that want one set a private nginx (makeNginx)
    NGINX_BIN: path.join(root, 'no-nginx'),
    NGINX_SITES_AVAILABLE: path.join(root, 'etc/nginx/sites-available'),
    NGINX_SITES_ENABLED: path.join(root, 'etc/nginx/sites-enabled'),
    CERTBOT_CONFIG_DIR: path.join(root, 'etc/letsencrypt'),
    ...extra,
  }
  return { root, dirs, env, ufwLog }
}

async function run(args: string[], env: Record<string, string>, input?: string) {
  const r = await runStep(SCRIPT, args, env, input)
  outputs.push(r.out)
  return r
}

describe('frps-setup', () => {
  it('installs frps, its config, identity, unit, ufw rules and the nginx site; a re-run changes nothing', async () => {
    const s = scratch()
    const env = { ...s.env }
    if (canRunNginx) {
      nginx = makeNginx(path.join(s.root, 'nginx'))
      // Without any server block nginx listens on *:80, which the public-path test needs free.
      fs.writeFileSync(
        path.join(nginx.root, 'conf.d/placeholder.conf'),
        `server { listen 127.0.0.1:${await freePort()}; return 404; }\n`,
      )
      nginx.start()
      const httpPort = await freePort()
      Object.assign(env, {
        FRPS_SKIP_NGINX: '0',
        NGINX_BIN: 'nginx',
        NGINX_CONF: nginx.conf,
        NGINX_SITES_AVAILABLE: nginx.sitesAvailable,
        NGINX_SITES_ENABLED: nginx.sitesEnabled,
        NGINX_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
      })
    }
    const r = await run(['--token-stdin'], env, `${TOKEN}\n`)
    expect(r.code, r.out).toBe(0)

    const configFile = path.join(s.dirs.config, 'frps.toml')
    const tokenFile = path.join(s.dirs.config, 'frps.token')
    const tls = path.join(s.dirs.config, 'tls')
    expect(parse(fs.readFileSync(configFile, 'utf8'))).toMatchObject({
      bindPort: 7000,
      proxyBindAddr: '127.0.0.1',
      auth: { method: 'token', tokenSource: { type: 'file', file: { path: tokenFile } } },
      transport: {
        tls: { force: true, certFile: path.join(tls, 'server.crt'), keyFile: path.join(tls, 'server.key') },
      },
      allowPorts: [{ single: 12080 }],
      log: { to: path.join(s.dirs.log, 'frps.log'), disablePrintColor: true },
    })
    expect(fs.readFileSync(configFile, 'utf8')).not.toContain(TOKEN)
    expect(fs.readFileSync(tokenFile, 'utf8')).toBe(`${TOKEN}\n`)
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.join(tls, 'server.key')).mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.join(tls, 'ca.key')).mode & 0o777).toBe(0o600)

    const unit = fs.readFileSync(path.join(s.dirs.systemd, 'frps.service'), 'utf8')
    expect(unit).toContain('User=frps')
    expect(unit).toContain(`ExecStartPre=${path.join(s.dirs.install, 'frps')} verify -c ${configFile}`)
    expect(r.out).toMatch(/would run .*useradd --system/)
    expect(r.out).toMatch(
      /to start the service run: systemctl daemon-reload && systemctl enable frps.service/,
    )
    expect(fs.readFileSync(s.ufwLog, 'utf8').trim().split('\n')).toEqual([
      'status',
      'allow 7000/tcp',
      'allow 80/tcp',
      'allow 443/tcp',
    ])
    expect(r.out).toMatch(/ufw is active: allowed 7000\/tcp, 80\/tcp, 443\/tcp/)
    expect(r.out).toContain(`tunnel CA: ${path.join(tls, 'ca.crt')}`)
    expect(r.out).toMatch(/frpc-setup.mts --frps-ca/)
    if (nginx) {
      // no certificate yet: plain http, the ACME challenge from the webroot and the tunnel
      const site = fs.readFileSync(path.join(nginx.sitesAvailable, `${DOMAIN}.conf`), 'utf8')
      expect(site).toContain('proxy_pass http://127.0.0.1:12080')
      expect(site).toContain(`root ${env.ACME_WEBROOT};`)
      expect(site).not.toMatch(/^\s*listen .*ssl;/m)
      expect(fs.statSync(env.ACME_WEBROOT!).isDirectory()).toBe(true)
      expect(fs.existsSync(path.join(nginx.sitesEnabled, `${DOMAIN}.conf`))).toBe(true)
      expect(r.out).toMatch(/nginx serves plain http: curl http:\/\/ph\.posthog\.test\/_health/)
      expect(r.out).toMatch(/next: https \(node certbot\.mjs --domain ph\.posthog\.test/)
    }
    if (releaseIsReal('0.70.1'))
      expect(fs.readFileSync(path.join(s.dirs.install, 'frps')).equals(fs.readFileSync(REAL_FRPS!))).toBe(
        true,
      )

    const watched = [
      path.join(s.dirs.install, 'frps'),
      configFile,
      tokenFile,
      path.join(tls, 'server.crt'),
      path.join(tls, 'ca.crt'),
      path.join(s.dirs.systemd, 'frps.service'),
      ...(nginx ? [path.join(nginx.sitesAvailable, `${DOMAIN}.conf`)] : []),
    ]
    const before = watched.map((f) => fs.statSync(f).mtimeMs)
    const requests = releases.requests.length
    const again = await run([], env)
    expect(again.code, again.out).toBe(0)
    expect(watched.map((f) => fs.statSync(f).mtimeMs)).toEqual(before)
    expect(releases.requests.length).toBe(requests)
    expect(again.out).toMatch(/keeping the installed token/)
    expect(again.out).toMatch(/frps\.toml is up to date/)
  })

  it('installs nothing and exits 1 on a checksum mismatch', async () => {
    const s = scratch({ FRP_VERSION: '0.69.0' })
    const r = await run(['--token-stdin'], s.env, TOKEN)
    expect(r.code).toBe(1)
    expect(r.out.trim().split('\n').at(-1)).toMatch(
      /^frps-setup: error: checksum mismatch .*nothing was installed/,
    )
    expect(fs.existsSync(path.join(s.dirs.install, 'frps'))).toBe(false)
    expect(fs.existsSync(s.dirs.config)).toBe(false)
  })

  it.each([
    ['a domain that is not a hostname', ['--domain', 'not a host', '--token-stdin'], {}, TOKEN],
    ['a port out of range', ['--remote-port', '70000', '--token-stdin'], {}, TOKEN],
    ['a short token', ['--token-stdin'], {}, 'short-token'],
    ['a token with spaces', ['--token-stdin'], {}, `${TOKEN} ${TOKEN}`],
    ['no token at all', [], {}, ''],
    ['both token sources', ['--token-stdin', '--token-file', '/etc/hostname'], {}, TOKEN],
    ['an unknown flag', ['--token', TOKEN], {}, ''],
    ['launchd on a VPS', ['--token-stdin', '--service-manager', 'launchd'], {}, TOKEN],
    ['frp older than 0.64.0 (no auth.tokenSource)', ['--token-stdin', '--frp-version', '0.63.0'], {}, TOKEN],
    ["a token with '{{' (frpc.toml would break)", ['--token-stdin'], {}, `{{${TOKEN}`],
    [
      'an https listen value that is not [address:]port',
      ['--token-stdin', '--https-listen', '443 ssl'],
      {},
      TOKEN,
    ],
    ['an ACME webroot nginx cannot take', ['--token-stdin', '--acme-webroot', '/var/www/my site'], {}, TOKEN],
  ])('exits 2 with one line and installs nothing on %s', async (_what, args, extra, input) => {
    const s = scratch({ ...extra, FRPS_SKIP_NGINX: '0' })
    const r = await run(args as string[], s.env, input as string)
    expect(r.code, r.out).toBe(2)
    expect(r.out.trim().split('\n')).toHaveLength(1)
    expect(fs.existsSync(s.dirs.install)).toBe(false)
    expect(fs.existsSync(s.dirs.config)).toBe(false)
    expect(fs.existsSync(s.env.ACME_WEBROOT!)).toBe(false)
  })

  it("reads the token from a file, and says so when ufw isn't there", async () => {
    const s = scratch({ UFW_BIN: '/nonexistent/ufw' })
    const tokenSrc = path.join(s.root, 'token.txt')
    fs.writeFileSync(tokenSrc, `${TOKEN}\n`)
    const r = await run(['--token-file', tokenSrc], s.env)
    expect(r.code, r.out).toBe(0)
    expect(fs.readFileSync(path.join(s.dirs.config, 'frps.token'), 'utf8')).toBe(`${TOKEN}\n`)
    expect(r.out).toMatch(/ufw is not installed/)
  })

  it.runIf(haveFrp)(
    'the installed frps and frpc-setup --frps-ca make a tunnel that only answers on 127.0.0.1',
    async () => {
      const backend = await listenLocal(http.createServer((_q, res) => res.end('ok')))
      try {
        const bindPort = await freePort()
        const remotePort = await freePort()
        const s = scratch({
          FRP_BIND_ADDR: '127.0.0.1',
          FRP_SERVER_PORT: String(bindPort),
          FRP_REMOTE_PORT: String(remotePort),
        })
        const vps = await run(['--token-stdin'], s.env, TOKEN)
        expect(vps.code, vps.out).toBe(0)
        const caFile = path.join(s.dirs.config, 'tls/ca.crt')

        const home = path.join(s.root, 'home')
        const homeEnv = {
          HOMELAB_ENV_FILE: path.join(home, '.env'),
          DOMAIN,
          FRP_TOKEN: TOKEN,
          FRP_SERVER_ADDR: '127.0.0.1',
          FRP_SERVER_PORT: String(bindPort),
          FRP_REMOTE_PORT: String(remotePort),
          POSTHOG_PROXY_HTTP_PORT: String(backend.port),
          FRP_RELEASE_BASE_URL: releases.baseUrl,
          FRP_INSTALL_DIR: path.join(home, 'bin'),
          FRP_CONFIG_DIR: path.join(home, 'etc'),
          FRP_LOG_DIR: path.join(home, 'log'),
          SYSTEMD_UNIT_DIR: path.join(home, 'systemd'),
          FRP_SERVICE_MANAGER: 'none',
        }
        fs.mkdirSync(home)
        const client = await runStep('scripts/frpc-setup.mts', ['--frps-ca', caFile], homeEnv)
        outputs.push(client.out)
        expect(client.code, client.out).toBe(0)

        running.push(startFrp(path.join(s.dirs.install, 'frps'), path.join(s.dirs.config, 'frps.toml')))
        await waitForLog(path.join(s.dirs.log, 'frps.log'), /frps started successfully/)
        running.push(startFrp(path.join(home, 'bin/frpc'), path.join(home, 'etc/frpc.toml')))
        await waitForLog(path.join(home, 'log/frpc.log'), /start proxy success/)
        expect((await httpGet(remotePort, '127.0.0.1', '/_health')).body).toBe('ok')
        expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
      } finally {
        await backend.close()
      }
    },
  )

  it.runIf(process.getuid?.() === 0)(
    'with systemd, frps runs as its user and can read exactly what it needs',
    async () => {
      const s = scratch({ FRP_SERVICE_MANAGER: 'systemd', FRPS_USER: 'nobody' })
      const shims = path.join(s.root, 'shims')
      fs.mkdirSync(shims)
      const calls = path.join(s.root, 'systemctl.log')
      fs.writeFileSync(
        path.join(shims, 'systemctl'),
        `#!/usr/bin/env bash\necho "$*" >> ${calls}\ncase "$1" in is-*) exit 3 ;; esac\n`,
        { mode: 0o755 },
      )
      const r = await run(['--token-stdin'], { ...s.env, PATH: `${shims}:${process.env.PATH}` }, TOKEN)
      expect(r.code, r.out).toBe(0)
      const gid = fs.statSync(s.dirs.log).gid
      expect(fs.statSync(s.dirs.log).uid).not.toBe(0)
      const tls = path.join(s.dirs.config, 'tls')
      const perms = (f: string) => {
        const st = fs.statSync(f)
        return [st.uid, st.gid, (st.mode & 0o777).toString(8)]
      }
      expect(perms(path.join(s.dirs.config, 'frps.token'))).toEqual([0, gid, '640'])
      expect(perms(path.join(tls, 'server.key'))).toEqual([0, gid, '640'])
      expect(perms(tls)).toEqual([0, gid, '750'])
      expect(perms(path.join(tls, 'ca.key'))).toEqual([0, 0, '600'])
      expect(fs.readFileSync(path.join(s.dirs.systemd, 'frps.service'), 'utf8')).toContain('User=nobody')
      expect(fs.readFileSync(calls, 'utf8')).toContain('restart frps.service')
      expect(r.out).not.toMatch(/useradd/)
    },
  )

  it('never prints the token', () => {
    expect(outputs.length).toBeGreaterThan(5)
    for (const out of outputs) expect(out).not.toContain(TOKEN)
  })
})
