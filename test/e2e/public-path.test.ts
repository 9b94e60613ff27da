// The whole public path on loopback, every piece real except PostHog (a stand-in) and the Docker
// engine (not involved):
//   client --https--> nginx (the site the toolkit writes whole) --> 127.0.0.1:<remotePort>
//   (frps) ==TLS, CA-verified==> frpc --> stand-in PostHog
// frps and frpc are the real frp 0.70.1 from ../shared, installed by the setup scripts from a
// release served on 127.0.0.1; without ../shared a plain TCP forwarder carries the tunnel port
// (said in one line) and everything else runs the same. frps-setup.mjs and certbot.mjs are the
// BUNDLED VPS scripts, run from a folder without node_modules; certbot certonly --webroot runs
// against Pebble. The migration from a site certbot --nginx edited (installs of earlier versions)
// uses the real certbot --nginx --redirect, which only considers server blocks on port 80, so
// nginx's plain-http side and Pebble's HTTP-01 port are 127.0.0.1:80: this test needs root, as CI has.
// The test acts as systemd: after a setup script it (re)starts frps/frpc from the installed files.
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { certFile, deployHookPath } from '../../lib/tunnel/certbot.mts'
import { readCertInfo } from '../../lib/tunnel/certificate.mts'
import { installNginxSite } from '../../lib/tunnel/nginx-install.mts'
import { recordedSettings } from '../../lib/tunnel/nginx-site.mts'
import {
  canConnect,
  freePort,
  type HttpAnswer,
  httpGet,
  type ProcessOptions,
  runProcess,
  scratchDir,
  waitFor,
} from '../helpers/common.ts'
import {
  listeningAddresses,
  needRealFrp,
  REAL_FRP_VERSION,
  type RunningFrp,
  startFrp,
  waitForLog,
} from '../helpers/frp.ts'
import { buildRelease, type FakeRelease, serveDir } from '../helpers/frp-release.ts'
import {
  forwardPort,
  hasBinary,
  holdPortLock,
  httpsRequest,
  legacySite,
  makeNginx,
  type Nginx,
  type Pebble,
  pollHttps,
  readEvents,
  type StandIn,
  servedCertificate,
  startPebble,
  startStandIn,
  type TlsTarget,
  tlsHandshake,
  webSocketEcho,
} from '../helpers/public-path.ts'

const DOMAIN = 'posthog.test'
const LEGACY = 'legacy.posthog.test'
const FAIL_DOMAIN = 'unreachable.test'
const EMAIL = 'admin@posthog.test'
const TOKEN = 'pUbL1cP4th'.repeat(4)
const REQUIRED = ['nginx', 'certbot', 'pebble', 'pebble-challtestsrv', 'openssl']
const missing = REQUIRED.filter((b) => !hasBinary(b))
const isRoot = process.getuid?.() === 0
const skipReason = missing.length
  ? `missing ${missing.join(', ')} (apt-get install ${missing.join(' ')} python3-certbot-nginx)`
  : !isRoot
    ? 'needs root: certbot --nginx --redirect and Pebble validate on port 80'
    : ''
if (skipReason) console.warn(`public-path e2e skipped: ${skipReason}`)
const realFrp =
  !skipReason && needRealFrp('the frp tunnel in the public-path e2e', 'a TCP forwarder stands in for')

let dir: string
let vps: string
let standIn: StandIn
let pebble: Pebble
let nginx: Nginx
let releases: FakeRelease
let httpsPort: number
let legacyHttpsPort: number
let bindPort: number
let remotePort: number
let target: TlsTarget
let pebbleRoot: string
const outputs: string[] = []
const le = () => path.join(dir, 'le')

interface Ran {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs a command without blocking the event loop (the stand-in PostHog lives in this process). */
async function run(cmd: string, args: string[], opts: ProcessOptions): Promise<Ran> {
  const { code, stdout, stderr } = await runProcess(cmd, args, opts)
  outputs.push(stdout, stderr)
  return { status: code, stdout, stderr }
}

// ---------------------------------------------------------------------------------------------
// The VPS: frps-setup.mjs and certbot.mjs with every path in the scratch dir

interface Vps {
  domain: string
  root: string
  installDir: string
  configDir: string
  logDir: string
}

function vpsFor(domain: string, name: string): Vps {
  const root = path.join(dir, name)
  return {
    domain,
    root,
    // one frps binary for every VPS here: a second install would only find it up to date
    installDir: path.join(dir, 'vps-bin'),
    configDir: path.join(root, 'etc/frp'),
    logDir: path.join(root, 'log'),
  }
}

function frpsSetup(v: Vps, env: Record<string, string> = {}, input?: string): Promise<Ran> {
  const args = [path.join(vps, 'frps-setup.mjs'), '--domain', v.domain, ...(input ? ['--token-stdin'] : [])]
  return run(process.execPath, args, {
    cwd: vps,
    timeoutMs: 90_000,
    ...(input ? { input } : {}),
    env: {
      ...process.env,
      FRP_RELEASE_BASE_URL: releases.baseUrl,
      FRP_INSTALL_DIR: v.installDir,
      FRP_CONFIG_DIR: v.configDir,
      FRP_LOG_DIR: v.logDir,
      SYSTEMD_UNIT_DIR: path.join(v.root, 'systemd'),
      FRP_SERVICE_MANAGER: 'none',
      UFW_BIN: path.join(v.root, 'no-ufw'),
      FRP_SERVER_PORT: String(bindPort),
      FRP_REMOTE_PORT: String(remotePort),
      NGINX_CONF: nginx.conf,
      NGINX_SITES_AVAILABLE: nginx.sitesAvailable,
      NGINX_SITES_ENABLED: nginx.sitesEnabled,
      NGINX_HTTP_LISTEN: '127.0.0.1:80',
      NGINX_HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
      ACME_WEBROOT: path.join(dir, 'acme'),
      CERTBOT_CONFIG_DIR: le(),
      ...env,
    },
  })
}

function certbotScript(domain: string, extra: string[] = []): Promise<Ran> {
  const args = [
    path.join(vps, 'certbot.mjs'),
    ...['--domain', domain, '--email', EMAIL, '--yes', '--acme-server', pebble.directoryUrl],
    ...[
      '--config-dir',
      le(),
      '--work-dir',
      path.join(dir, 'le-work'),
      '--logs-dir',
      path.join(dir, 'le-logs'),
    ],
    ...['--nginx-conf', nginx.conf, '--sites-available-dir', nginx.sitesAvailable],
    ...['--sites-enabled-dir', nginx.sitesEnabled, '--skip-install'],
    ...extra,
  ]
  return run(process.execPath, args, {
    cwd: vps,
    timeoutMs: 120_000,
    env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.listenerCaFile },
  })
}

/** Runs a VPS script that (re)writes the site and waits until nginx runs the new workers. */
async function changingSite(script: () => Promise<Ran>): Promise<Ran> {
  const before = nginx.generations()
  const res = await script()
  expect(res.status, `${res.stderr}${res.stdout}`).toBe(0)
  await nginx.reloaded(before)
  return res
}

// ---------------------------------------------------------------------------------------------
// The tunnel: the real frps/frpc as installed by the setup scripts (the test is their systemd)

const home = () => path.join(dir, 'home')
const main = () => vpsFor(DOMAIN, 'vps-main')
let frps: RunningFrp | undefined
let frpc: RunningFrp | undefined
let forwarder: { close: () => Promise<void> } | undefined

function frpcSetup(port: number): Promise<Ran> {
  const caFile = path.join(main().configDir, 'tls/ca.crt')
  return run(process.execPath, ['--import', 'tsx', 'scripts/frpc-setup.mts', '--frps-ca', caFile], {
    timeoutMs: 90_000,
    env: {
      ...process.env,
      HOMELAB_ENV_FILE: path.join(home(), '.env'),
      DOMAIN,
      FRP_TOKEN: TOKEN,
      FRP_SERVER_ADDR: '127.0.0.1',
      FRP_SERVER_PORT: String(bindPort),
      FRP_REMOTE_PORT: String(port),
      POSTHOG_PROXY_HTTP_PORT: String(standIn.port),
      FRP_RELEASE_BASE_URL: releases.baseUrl,
      FRP_INSTALL_DIR: path.join(home(), 'bin'),
      FRP_CONFIG_DIR: path.join(home(), 'etc'),
      FRP_LOG_DIR: path.join(home(), 'log'),
      SYSTEMD_UNIT_DIR: path.join(home(), 'systemd'),
      FRP_SERVICE_MANAGER: 'none',
    },
  })
}

const frpcLog = () => path.join(home(), 'log/frpc.log')
const count = (file: string, pattern: RegExp) =>
  fs.existsSync(file) ? (fs.readFileSync(file, 'utf8').match(new RegExp(pattern, 'g')) ?? []).length : 0

/** (Re)starts the tunnel on `port` after the setup scripts wrote it: frps and frpc from their installed files. */
async function openTunnel(port: number): Promise<void> {
  await Promise.all([frps?.stop(), frpc?.stop(), forwarder?.close()])
  if (!realFrp) {
    forwarder = await forwardPort(port, standIn.port)
    return
  }
  const setup = await frpcSetup(port)
  expect(setup.status, setup.stderr + setup.stdout).toBe(0)
  const started = count(frpcLog(), /start proxy success/)
  const m = main()
  frps = startFrp(path.join(m.installDir, 'frps'), path.join(m.configDir, 'frps.toml'))
  await waitForLog(path.join(m.logDir, 'frps.log'), /frps started successfully/)
  frpc = startFrp(path.join(home(), 'bin/frpc'), path.join(home(), 'etc/frpc.toml'))
  await waitFor(() => count(frpcLog(), /start proxy success/) > started, 'frpc to open the tunnel', 30_000)
}

// ---------------------------------------------------------------------------------------------

let bundled: Ran
const releasePort80: { release?: () => void } = {}
/** What was true before there was a certificate (checked by the tests below). */
const beforeCert: {
  site?: string
  health?: HttpAnswer
  challenge?: HttpAnswer
  https?: string[]
  setup?: Ran
} = {}
let issued: Ran

async function bundleForVps(): Promise<void> {
  const dist = path.join(dir, 'dist')
  bundled = await run(process.execPath, ['--import', 'tsx', 'scripts/bundle.mts', '--out-dir', dist], {
    timeoutMs: 90_000,
  })
  vps = path.join(dir, 'vps') // no node_modules anywhere above it
  fs.mkdirSync(vps)
  for (const f of fs.existsSync(dist) ? fs.readdirSync(dist) : [])
    fs.copyFileSync(path.join(dist, f), path.join(vps, f))
  expect(fs.existsSync(path.join(vps, 'certbot.mjs')), bundled.stderr).toBe(true)
}

const siteFile = (domain: string) => path.join(nginx.sitesAvailable, `${domain}.conf`)

describe.skipIf(Boolean(skipReason))('the whole public path on loopback', () => {
  beforeAll(async () => {
    // another run of this file on the same machine (a second checkout, a parallel `npm test`)
    // would want port 80 too: wait for it instead of failing
    releasePort80.release = await holdPortLock('port-80', 150_000)
    dir = scratchDir('public-path-')
    expect(await canConnect(80), 'port 80 on 127.0.0.1 is taken; stop whatever listens there').toBe(false)
    httpsPort = await freePort()
    legacyHttpsPort = await freePort()
    bindPort = await freePort()
    remotePort = await freePort()
    fs.mkdirSync(home())
    const releaseRoot = path.join(dir, 'releases')
    buildRelease(releaseRoot, REAL_FRP_VERSION)
    ;[standIn, pebble, releases] = await Promise.all([
      startStandIn(),
      startPebble(path.join(dir, 'pebble'), 80),
      serveDir(releaseRoot),
    ])
    nginx = makeNginx(path.join(dir, 'nginx'))
    // without any server block nginx would listen on *:80 by itself
    fs.writeFileSync(
      path.join(nginx.root, 'conf.d/placeholder.conf'),
      `server { listen 127.0.0.1:${await freePort()}; return 404; }\n`,
    )
    nginx.start()
    await bundleForVps()

    beforeCert.setup = await changingSite(() => frpsSetup(main(), {}, `${TOKEN}\n`))
    await openTunnel(remotePort)
    const challenge = path.join(dir, 'acme/.well-known/acme-challenge')
    fs.mkdirSync(challenge, { recursive: true })
    fs.writeFileSync(path.join(challenge, 'probe'), 'challenge answered from the webroot')
    beforeCert.site = fs.readFileSync(siteFile(DOMAIN), 'utf8')
    beforeCert.health = await httpGet(80, DOMAIN, '/e/')
    beforeCert.challenge = await httpGet(80, DOMAIN, '/.well-known/acme-challenge/probe')
    beforeCert.https = listeningAddresses(httpsPort)

    issued = await changingSite(() => certbotScript(DOMAIN))
    pebbleRoot = await pebble.rootPem()
    target = { host: DOMAIN, port: httpsPort, ca: pebbleRoot }
  }, 300_000)

  afterAll(async () => {
    nginx?.stop()
    await Promise.all([frps?.stop(), frpc?.stop(), forwarder?.close(), pebble?.stop(), standIn?.close()])
    await releases?.close()
    releasePort80.release?.()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('before a certificate: plain http only, the tunnel behind it and the ACME challenge from the webroot', () => {
    expect(beforeCert.setup!.stdout).toMatch(/until there is a certificate nginx serves plain http/)
    expect(beforeCert.site).not.toMatch(/^\s*listen .* ssl;/m)
    expect(beforeCert.health!.status).toBe(200)
    expect(JSON.parse(beforeCert.health!.body)).toMatchObject({ headers: { proto: 'http' } })
    expect(beforeCert.challenge).toMatchObject({ status: 200, body: 'challenge answered from the webroot' })
    expect(beforeCert.https).toEqual([])
  })

  it('certbot.mjs gets the certificate with certonly --webroot and renders the https site', () => {
    expect(issued.stdout).toMatch(/nginx site .*posthog\.test\.conf updated \(previous file kept as .*\.bak-/)
    expect(issued.stdout).toMatch(/renewal dry run passed/)
    expect(issued.stdout).toMatch(/expires \d{4}-\d\d-\d\d/)
    const site = fs.readFileSync(siteFile(DOMAIN), 'utf8')
    expect(site).toContain(`ssl_certificate ${path.join(le(), 'live', DOMAIN, 'fullchain.pem')};`)
    expect(site).not.toContain('managed by Certbot')
    expect(fs.readFileSync(path.join(le(), 'renewal', `${DOMAIN}.conf`), 'utf8')).toMatch(
      /authenticator = webroot/,
    )
  })

  it('serves https://DOMAIN through the tunnel with a certificate that verifies against the ACME CA', async () => {
    const res = await httpsRequest(target, '/_health')
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: 'ok' })
    expect(res.headers['strict-transport-security']).toBe('max-age=63072000')
  })

  it('speaks TLS 1.2 and 1.3 only', async () => {
    expect(await tlsHandshake(target, 'TLSv1.3')).toBe('TLSv1.3')
    expect(await tlsHandshake(target, 'TLSv1.2')).toBe('TLSv1.2')
    expect(await tlsHandshake(target, 'TLSv1.1')).toMatch(/^refused/)
  })

  it('redirects http to https, except the ACME challenge', async () => {
    const res = await httpGet(80, DOMAIN, '/_health?x=1')
    expect(res.status).toBe(301)
    expect(res.headers.location).toBe(`https://${DOMAIN}/_health?x=1`)
    const challenge = await httpGet(80, DOMAIN, '/.well-known/acme-challenge/probe')
    expect(challenge).toMatchObject({ status: 200, body: 'challenge answered from the webroot' })
  })

  it('passes events through and tells PostHog the request was https', async () => {
    const body = JSON.stringify({ event: '$pageview', distinct_id: 'u1' })
    const res = await httpsRequest(target, '/e/', { method: 'POST', body })
    expect(JSON.parse(res.body)).toEqual({
      echo: body,
      headers: { proto: 'https', forwardedFor: '127.0.0.1' },
    })
  })

  it('upgrades and echoes a WebSocket', async () => {
    expect(await webSocketEcho(target, '/ws', 'hello through the tunnel')).toBe('hello through the tunnel')
  })

  it('streams server-sent events without buffering', async () => {
    expect(await readEvents(target, '/livestream/events', 3)).toEqual(['event 1', 'event 2', 'event 3'])
  })

  it('accepts a 30 MB upload (client_max_body_size 64m)', async () => {
    const size = 30 * 1024 * 1024
    const res = await httpsRequest(target, '/upload', {
      method: 'POST',
      body: Buffer.alloc(size, 7),
      timeoutMs: 30_000,
    })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ bytes: size })
  })

  it.runIf(realFrp)('frps opens the tunnel port on 127.0.0.1 only (proxyBindAddr)', () => {
    expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
  })

  it('re-running frps-setup and certbot.mjs after issuance changes no file and reloads nothing', async () => {
    const m = main()
    const watched = [
      siteFile(DOMAIN),
      path.join(m.installDir, 'frps'),
      path.join(m.configDir, 'frps.toml'),
      path.join(m.configDir, 'frps.token'),
      path.join(m.configDir, 'tls/server.crt'),
      path.join(m.configDir, 'tls/ca.crt'),
      path.join(m.root, 'systemd/frps.service'),
      certFile(le(), DOMAIN),
      path.join(le(), 'renewal', `${DOMAIN}.conf`),
      deployHookPath(le()),
    ]
    const mtimes = () => watched.map((f) => fs.statSync(f).mtimeMs)
    const before = mtimes()
    const files = fs.readdirSync(nginx.sitesAvailable)
    const generation = nginx.generations()
    const downloads = releases.requests.length
    const setup = await frpsSetup(m)
    expect(setup.status, setup.stderr).toBe(0)
    expect(setup.stdout).toMatch(/nginx site .* is up to date/)
    expect(setup.stdout).toMatch(/nginx serves https:\/\/posthog\.test with the certificate/)
    const again = await certbotScript(DOMAIN)
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/certificate for posthog\.test is valid \(\d+ days left\): nothing issued/)
    expect(again.stdout).toMatch(/renewal dry run passed/)
    expect(mtimes()).toEqual(before)
    expect(fs.readdirSync(nginx.sitesAvailable)).toEqual(files)
    expect(nginx.generations()).toBe(generation)
    expect(releases.requests.length).toBe(downloads)
    expect(readCertInfo(fs.readFileSync(certFile(le(), DOMAIN))).daysLeft).toBeGreaterThan(30)
  })

  it('installs a deploy hook that tests and reloads this nginx', async () => {
    const hook = deployHookPath(le())
    expect(fs.statSync(hook).mode & 0o111).not.toBe(0)
    const before = nginx.generations()
    const res = spawnSync(hook, [], {
      encoding: 'utf8',
      timeout: 15_000,
      env: { ...process.env, RENEWED_LINEAGE: path.join(le(), 'live', DOMAIN), RENEWED_DOMAINS: DOMAIN },
    })
    expect(res.status, res.stderr).toBe(0)
    await nginx.reloaded(before)
  })

  it('a new FRP_REMOTE_PORT: frps-setup re-renders the https site, and https keeps working through the moved tunnel', async () => {
    const old = remotePort
    remotePort = await freePort()
    const res = await changingSite(() => frpsSetup(main()))
    expect(res.stdout).toMatch(/frps\.toml updated/)
    const site = fs.readFileSync(siteFile(DOMAIN), 'utf8')
    expect(site).toContain(`proxy_pass http://127.0.0.1:${remotePort};`)
    expect(site).toContain(`ssl_certificate ${path.join(le(), 'live', DOMAIN, 'fullchain.pem')};`)
    expect(recordedSettings(site)?.upstreamPort).toBe(remotePort)
    await openTunnel(remotePort)
    expect((await httpsRequest(target, '/_health')).body).toBe('ok')
    expect(await servedCertificate(target)).toEqual(
      new X509Certificate(fs.readFileSync(certFile(le(), DOMAIN))).raw,
    )
    if (realFrp) {
      expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
      expect(listeningAddresses(old)).toEqual([])
    }
  })

  it('a failed issuance exits 1 with one line and leaves the plain-http site up', async () => {
    await installNginxSite({
      domain: FAIL_DOMAIN,
      upstreamPort: remotePort,
      httpListen: ['127.0.0.1:80'],
      acmeWebroot: path.join(dir, 'acme'),
      sitesAvailableDir: nginx.sitesAvailable,
      sitesEnabledDir: nginx.sitesEnabled,
      nginxTestArgs: [...nginx.args, '-t'],
      reload: () => nginx.reload(),
      log: (line) => outputs.push(line),
    })
    await pebble.addA(FAIL_DOMAIN, '127.0.0.2') // validation connects where nothing listens
    const before = fs.readFileSync(siteFile(FAIL_DOMAIN), 'utf8')
    const res = await certbotScript(FAIL_DOMAIN, ['--skip-renew-check'])
    expect(res.status).toBe(1)
    const lines = res.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^certbot: error: certbot certonly for unreachable\.test failed: \S.*127\.0\.0\.2.*; the nginx site is unchanged/,
    )
    expect(fs.readFileSync(siteFile(FAIL_DOMAIN), 'utf8')).toBe(before)
    expect(await httpGet(80, FAIL_DOMAIN, '/_health')).toMatchObject({ status: 200, body: 'ok' })
  })

  it('rolls the site back when nginx -t fails, exits 1 with one line, and nginx keeps serving', async () => {
    const before = fs.readFileSync(siteFile(DOMAIN), 'utf8')
    const backups = () =>
      fs.readdirSync(nginx.sitesAvailable).filter((f) => f.startsWith(`${DOMAIN}.conf.bak-`))
    const backupsBefore = backups()
    const broken = path.join(nginx.root, 'conf.d/broken.conf')
    fs.writeFileSync(broken, 'this_is_not_a_directive on;\n')
    try {
      // a setting only the site uses, so nothing else changes
      const res = await frpsSetup(main(), { ACME_WEBROOT: path.join(dir, 'acme-elsewhere') })
      expect(res.status).toBe(1)
      const lines = res.stderr.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/unknown directive "this_is_not_a_directive".*previous files are back/)
      expect(fs.readFileSync(siteFile(DOMAIN), 'utf8')).toBe(before)
      expect(backups()).toEqual(backupsBefore)
      expect((await httpsRequest(target, '/_health')).body).toBe('ok')
    } finally {
      fs.rmSync(broken)
    }
  })

  describe('a site certbot --nginx edited (installs of earlier versions)', () => {
    const legacy = () => vpsFor(LEGACY, 'vps-legacy')
    const legacyTarget = (): TlsTarget => ({ host: LEGACY, port: legacyHttpsPort, ca: pebbleRoot })
    let edited: string
    let certBefore: Buffer

    beforeAll(async () => {
      // the earlier frps-setup's port-80 site, then the real certbot --nginx --redirect editing it
      fs.writeFileSync(siteFile(LEGACY), legacySite(LEGACY, remotePort, ['127.0.0.1:80']))
      fs.symlinkSync(siteFile(LEGACY), path.join(nginx.sitesEnabled, `${LEGACY}.conf`))
      await nginx.reload()
      const certbot = await run(
        'certbot',
        [
          ...['--nginx', '--redirect', '-d', LEGACY, '--non-interactive', '--agree-tos', '-m', EMAIL],
          ...['--no-eff-email', '--server', pebble.directoryUrl, '--nginx-server-root', nginx.root],
          ...['--http-01-port', '80', '--https-port', String(legacyHttpsPort)],
          ...[
            '--config-dir',
            le(),
            '--work-dir',
            path.join(dir, 'le-work'),
            '--logs-dir',
            path.join(dir, 'le-logs'),
          ],
        ],
        { timeoutMs: 120_000, env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.listenerCaFile } },
      )
      expect(certbot.status, certbot.stderr + certbot.stdout).toBe(0)
      edited = fs.readFileSync(siteFile(LEGACY), 'utf8')
      certBefore = fs.readFileSync(certFile(le(), LEGACY))
      await waitFor(
        async () => (await httpsRequest(legacyTarget(), '/_health').catch(() => undefined))?.body === 'ok',
        'https on the certbot-edited site',
      )
    }, 180_000)

    it('frps-setup takes it over whole: the certificate reused, the old file kept, https never down', async () => {
      expect(edited).toContain('# managed by Certbot')
      const poller = pollHttps(legacyTarget(), '/_health')
      await new Promise((r) => setTimeout(r, 200))
      const res = await changingSite(() =>
        frpsSetup(legacy(), { NGINX_HTTPS_LISTEN: String(legacyHttpsPort) }, `${TOKEN}\n`),
      )
      await new Promise((r) => setTimeout(r, 200))
      const answers = await poller.stop()
      expect(answers.length).toBeGreaterThan(5)
      expect(answers.filter((a) => a !== '200 ok')).toEqual([])

      expect(res.stdout).toMatch(
        /replaced: the toolkit now writes the whole site, certbot's edits are kept in \S+\.bak-/,
      )
      const site = fs.readFileSync(siteFile(LEGACY), 'utf8')
      expect(site).not.toContain('managed by Certbot')
      expect(site).toContain(`ssl_certificate ${path.join(le(), 'live', LEGACY, 'fullchain.pem')};`)
      const backups = fs.readdirSync(nginx.sitesAvailable).filter((f) => f.startsWith(`${LEGACY}.conf.bak-`))
      expect(backups.map((b) => fs.readFileSync(path.join(nginx.sitesAvailable, b), 'utf8'))).toEqual([
        edited,
      ])
      expect(fs.readFileSync(certFile(le(), LEGACY))).toEqual(certBefore)
      expect(await servedCertificate(legacyTarget())).toEqual(new X509Certificate(certBefore).raw)
      expect((await httpGet(80, LEGACY, '/x')).headers.location).toBe(`https://${LEGACY}/x`)
    })

    it('then a re-run changes nothing, and certbot.mjs renews it through the new site (dry run)', async () => {
      const before = fs.statSync(siteFile(LEGACY)).mtimeMs
      const text = fs.readFileSync(siteFile(LEGACY), 'utf8')
      const generation = nginx.generations()
      const setup = await frpsSetup(legacy(), { NGINX_HTTPS_LISTEN: String(legacyHttpsPort) })
      expect(setup.status, setup.stderr).toBe(0)
      expect(fs.statSync(siteFile(LEGACY)).mtimeMs).toBe(before)
      expect(nginx.generations()).toBe(generation)
      // certbot --nginx's renewal settings (nginx authenticator) stay with the certificate; the
      // dry run proves they still work against the site the toolkit now writes (certbot's nginx
      // plugin reloads nginx around the challenge and leaves the site as it was)
      const res = await certbotScript(LEGACY)
      expect(res.status, res.stderr).toBe(0)
      expect(res.stdout).toMatch(/nothing issued/)
      expect(res.stdout).toMatch(/nginx site .* is up to date/)
      expect(res.stdout).toMatch(/renewal dry run passed/)
      expect(fs.readFileSync(siteFile(LEGACY), 'utf8')).toBe(text)
      expect((await httpsRequest(legacyTarget(), '/_health')).body).toBe('ok')
    })
  })

  it('runs the bundles with plain node from a folder without node_modules', () => {
    expect(bundled.status, bundled.stderr).toBe(0)
    for (const name of ['certbot', 'frps-setup', 'watch']) {
      const res = spawnSync(process.execPath, [path.join(vps, `${name}.mjs`), '--help'], {
        cwd: vps,
        encoding: 'utf8',
        timeout: 15_000,
      })
      expect(res.status, `${name}: ${res.stderr}`).toBe(0)
      expect(res.stdout).toMatch(/^Usage: /)
    }
    expect(fs.existsSync(path.join(vps, 'node_modules'))).toBe(false)
  })

  it('never prints the tunnel token', () => {
    const all = outputs.join('\n') + [frps, frpc].map((p) => p?.output() ?? '').join('\n')
    expect(all).not.toContain(TOKEN)
  })
})
