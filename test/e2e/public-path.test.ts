// The whole public path on loopback, every piece real except PostHog and frp (stand-ins):
//   client --https--> nginx (generated site + certbot's TLS from Pebble) --> 127.0.0.1:<remotePort>
//   (frps stand-in, generated frps.toml) ==TLS==> frpc stand-in (generated frpc.toml) --> stand-in PostHog.
// certbot runs through the BUNDLED remote/certbot.mjs from a folder without node_modules.
// certbot's --redirect only considers server blocks listening on port 80 (certbot-nginx's
// DEFAULT_LISTEN_PORT), so nginx's HTTP side and Pebble's HTTP-01 port are 127.0.0.1:80: this
// test needs root, as CI has. Every key of the generated TOML files is checked against frp's full
// examples by test/unit/frp.test.ts; here the frp stand-in's strict `verify` runs on them too.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { certFile, deployHookPath, readCertInfo } from '../../lib/certbot.mts'
import { RuntimeFailure } from '../../lib/cli.mts'
import { frpcToml, frpsToml } from '../../lib/frp.mts'
import { CERTBOT_MARK, installNginxSite } from '../../lib/nginx.mts'
import { ensureTunnelIdentity } from '../../lib/tunnel-identity.mts'
import {
  canConnect,
  freePort,
  httpGet,
  type ProcessOptions,
  runProcess,
  scratchDir,
  waitFor,
} from '../helpers/common.ts'
import {
  listeningAddresses,
  needRealFrp,
  REAL_FRPC,
  REAL_FRPS,
  type RunningFrp,
  startFrp,
  verifyConfig,
  waitForLog,
} from '../helpers/frp.ts'
import {
  hasBinary,
  holdPortLock,
  httpsRequest,
  makeNginx,
  type Nginx,
  type Pebble,
  readEvents,
  type StandIn,
  startPebble,
  startStandIn,
  type TlsTarget,
  webSocketEcho,
} from '../helpers/public-path.ts'

const DOMAIN = 'posthog.test'
const FAIL_DOMAIN = 'unreachable.test'
const EMAIL = 'admin@posthog.test'
const TOKEN = 'pUbL1cP4th'.repeat(4)
const REQUIRED = ['nginx', 'certbot', 'pebble', 'pebble-challtestsrv', 'openssl']
const missing = REQUIRED.filter((b) => !hasBinary(b))
const isRoot = process.getuid?.() === 0
const skipReason = missing.length
  ? `missing ${missing.join(', ')} (apt-get install ${missing.join(' ')})`
  : !isRoot
    ? 'needs root: certbot --redirect and Pebble validate on port 80'
    : ''
if (skipReason) console.warn(`public-path e2e skipped: ${skipReason}`)
const haveFrp = needRealFrp('the public-path e2e')

let dir: string
let vps: string
let standIn: StandIn
let pebble: Pebble
let nginx: Nginx
let nginxRunning = false
let releasePort80: (() => void) | undefined
let httpsPort: number
let remotePort: number
let target: TlsTarget
const frp: RunningFrp[] = []
const outputs: string[] = []

const siteOptions = () => ({
  domain: DOMAIN,
  upstreamPort: remotePort,
  httpListen: ['127.0.0.1:80'],
  sitesAvailableDir: nginx.sitesAvailable,
  sitesEnabledDir: nginx.sitesEnabled,
  nginxTestArgs: [...nginx.args, '-t'],
  reload: async () => {
    if (nginxRunning) await nginx.reload()
    else nginx.start()
    nginxRunning = true
  },
  log: (line: string) => outputs.push(line),
})

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

function certbotScript(domain: string, extra: string[] = []): Promise<Ran> {
  const args = [
    path.join(vps, 'certbot.mjs'),
    ...['--domain', domain, '--email', EMAIL, '--yes', '--acme-server', pebble.directoryUrl],
    ...['--config-dir', path.join(dir, 'le/config'), '--work-dir', path.join(dir, 'le/work')],
    ...['--logs-dir', path.join(dir, 'le/logs'), '--nginx-server-root', nginx.root],
    ...['--http-01-port', '80', '--https-port', String(httpsPort), '--skip-install'],
    ...extra,
  ]
  return run(process.execPath, args, {
    cwd: vps,
    timeoutMs: 90_000,
    env: { ...process.env, REQUESTS_CA_BUNDLE: pebble.listenerCaFile },
  })
}

/**
 * GET /_health right after a reload: while nginx swaps its workers a new connection can be cut
 * (nginx's behaviour, not the site's), so one retry is allowed; a wrong answer is never retried.
 */
async function healthAfterReload(): Promise<string> {
  try {
    return (await httpsRequest(target, '/_health')).body
  } catch (e) {
    outputs.push(`first request after reload failed: ${(e as Error).message}`)
    await new Promise((r) => setTimeout(r, 500))
    return (await httpsRequest(target, '/_health')).body
  }
}

async function startTunnel(standInPort: number): Promise<void> {
  const id = await ensureTunnelIdentity({ dir: path.join(dir, 'frp/tls'), serverName: 'vps.posthog.test' })
  const bindPort = await freePort()
  const tokenFile = path.join(dir, 'frp/token')
  fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
  const frpsFile = path.join(dir, 'frp/frps.toml')
  const frpcFile = path.join(dir, 'frp/frpc.toml')
  const log = (n: string) => path.join(dir, `frp/${n}.log`)
  // bindAddr 0.0.0.0 as on the VPS: the control port is public, the tunnel's port must not be
  fs.writeFileSync(
    frpsFile,
    frpsToml({
      bindAddr: '0.0.0.0',
      bindPort,
      remotePort,
      tokenFile,
      certFile: id.certFile,
      keyFile: id.keyFile,
      logFile: log('frps'),
    }),
  )
  fs.writeFileSync(
    frpcFile,
    frpcToml({
      serverAddr: '127.0.0.1',
      serverPort: bindPort,
      token: TOKEN,
      localPort: standInPort,
      remotePort,
      logFile: log('frpc'),
      trustedCaFile: id.caFile,
      serverName: 'vps.posthog.test',
    }),
  )
  expect(await verifyConfig('frps', frpsFile)).toMatchObject({ ok: true })
  expect(await verifyConfig('frpc', frpcFile)).toMatchObject({ ok: true })
  frp.push(startFrp(REAL_FRPS!, frpsFile))
  await waitForLog(log('frps'), /frps started successfully/, 10_000)
  frp.push(startFrp(REAL_FRPC!, frpcFile))
  await waitForLog(log('frpc'), /start proxy success/, 10_000)
  await waitFor(() => canConnect(remotePort), 'the tunnel port', 10_000)
}

let bundleResult: Ran

async function bundleForVps(): Promise<void> {
  const dist = path.join(dir, 'dist')
  const res = await run(process.execPath, ['--import', 'tsx', 'scripts/bundle.mts', '--out-dir', dist], {
    timeoutMs: 90_000,
  })
  bundleResult = res
  vps = path.join(dir, 'vps') // no node_modules anywhere above it
  fs.mkdirSync(vps)
  for (const f of fs.existsSync(dist) ? fs.readdirSync(dist) : [])
    fs.copyFileSync(path.join(dist, f), path.join(vps, f))
  expect(fs.existsSync(path.join(vps, 'certbot.mjs')), res.stderr).toBe(true)
}

describe.skipIf(Boolean(skipReason) || !haveFrp)('the whole public path on loopback', () => {
  beforeAll(async () => {
    // another run of this file on the same machine (a second checkout, a parallel `npm test`)
    // would want port 80 too: wait for it instead of failing
    releasePort80 = await holdPortLock('port-80', 150_000)
    dir = scratchDir('public-path-')
    expect(await canConnect(80), 'port 80 on 127.0.0.1 is taken; stop whatever listens there').toBe(false)
    ;[httpsPort, remotePort] = [await freePort(), await freePort()]
    standIn = await startStandIn()
    await startTunnel(standIn.port)
    pebble = await startPebble(path.join(dir, 'pebble'), 80)
    nginx = makeNginx(path.join(dir, 'nginx'))
    expect(await installNginxSite(siteOptions())).toBe('created')
    expect(await installNginxSite({ ...siteOptions(), domain: FAIL_DOMAIN })).toBe('created')
    await bundleForVps()
    const issued = await certbotScript(DOMAIN)
    expect(issued.status, `certbot.mjs: ${issued.stderr}${issued.stdout}`).toBe(0)
    expect(issued.stdout).toMatch(/renewal dry run passed/)
    expect(issued.stdout).toMatch(/expires \d{4}-\d\d-\d\d/)
    target = { host: DOMAIN, port: httpsPort, ca: await pebble.rootPem() }
  }, 300_000)

  afterAll(async () => {
    if (nginxRunning) nginx.stop()
    await Promise.all(frp.map((p) => p.stop()))
    await pebble?.stop()
    await standIn?.close()
    releasePort80?.()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('serves https://DOMAIN/_health with a certificate that verifies against the ACME CA', async () => {
    const res = await httpsRequest(target, '/_health')
    expect(res.status).toBe(200)
    expect(res.body).toBe('ok')
  })

  it('redirects http to https (certbot --redirect)', async () => {
    const res = await httpGet(80, DOMAIN, '/_health?x=1')
    expect(res.status).toBe(301)
    expect(res.headers.location).toBe(`https://${DOMAIN}/_health?x=1`)
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

  it("opens the tunnel's port on 127.0.0.1 only (proxyBindAddr), unlike the seed's public 12080", () => {
    expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
  })

  it('re-running certbot.mjs with a valid certificate issues nothing', async () => {
    const file = certFile(path.join(dir, 'le/config'), DOMAIN)
    const before = fs.readFileSync(file, 'utf8')
    const res = await certbotScript(DOMAIN, ['--skip-renew-check'])
    expect(res.status, res.stderr).toBe(0)
    expect(res.stdout).toMatch(/valid and nginx uses it: nothing issued/)
    expect(fs.readFileSync(file, 'utf8')).toBe(before)
    expect(readCertInfo(before).daysLeft).toBeGreaterThan(30)
  })

  it('installs a deploy hook that tests and reloads this nginx', () => {
    const hook = deployHookPath(path.join(dir, 'le/config'))
    expect(fs.statSync(hook).mode & 0o111).not.toBe(0)
    const res = spawnSync(hook, [], {
      encoding: 'utf8',
      timeout: 15_000,
      env: {
        ...process.env,
        RENEWED_LINEAGE: path.join(dir, 'le/config/live', DOMAIN),
        RENEWED_DOMAINS: DOMAIN,
      },
    })
    expect(res.status, res.stderr).toBe(0)
  })

  it('a failed issuance exits 1 with one line and leaves the HTTP site up', async () => {
    await pebble.addA(FAIL_DOMAIN, '127.0.0.2') // validation connects where nothing listens
    const res = await certbotScript(FAIL_DOMAIN, ['--skip-renew-check'])
    expect(res.status).toBe(1)
    const lines = res.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^certbot: error: certbot --nginx for unreachable\.test failed: \S.*127\.0\.0\.2/,
    )
    const http = await httpGet(80, FAIL_DOMAIN, '/_health')
    expect(http).toMatchObject({ status: 200, body: 'ok' })
  })

  it("re-running the nginx setup keeps certbot's lines; a changed core re-applies them", async () => {
    const site = path.join(nginx.sitesAvailable, `${DOMAIN}.conf`)
    const certbotEdited = fs.readFileSync(site, 'utf8')
    expect(certbotEdited).toContain(CERTBOT_MARK)
    expect(await installNginxSite(siteOptions())).toBe('unchanged')
    expect(fs.readFileSync(site, 'utf8')).toBe(certbotEdited)

    // bypass the tunnel: point nginx straight at the stand-in, then back
    expect(await installNginxSite({ ...siteOptions(), upstreamPort: standIn.port })).toBe('updated')
    const regenerated = fs.readFileSync(site, 'utf8')
    expect(regenerated).toContain(`proxy_pass http://127.0.0.1:${standIn.port};`)
    const marked = (t: string) =>
      t
        .split('\n')
        .filter((l) => l.includes(CERTBOT_MARK))
        .map((l) => l.trim())
    expect(marked(regenerated)).toEqual(marked(certbotEdited))
    expect(await healthAfterReload()).toBe('ok')
    expect((await httpGet(80, DOMAIN, '/')).status).toBe(301)
    expect(await installNginxSite(siteOptions())).toBe('updated')
    expect(await healthAfterReload()).toBe('ok')
  })

  it('rolls a site back when nginx -t fails, and nginx keeps serving', async () => {
    const site = path.join(nginx.sitesAvailable, `${DOMAIN}.conf`)
    const before = fs.readFileSync(site, 'utf8')
    const broken = path.join(nginx.root, 'conf.d/broken.conf')
    fs.writeFileSync(broken, 'this_is_not_a_directive on;\n')
    try {
      const attempt = installNginxSite({ ...siteOptions(), upstreamPort: standIn.port })
      await expect(attempt).rejects.toThrow(RuntimeFailure)
      await expect(attempt).rejects.toThrow(
        /unknown directive "this_is_not_a_directive".*previous files are back/,
      )
      expect(fs.readFileSync(site, 'utf8')).toBe(before)
      expect((await httpsRequest(target, '/_health')).body).toBe('ok')
    } finally {
      fs.rmSync(broken)
    }
  })

  it('runs the bundles with plain node from a folder without node_modules', () => {
    expect(bundleResult.status, bundleResult.stderr).toBe(0)
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
    const all = outputs.join('\n') + frp.map((p) => p.output()).join('\n')
    expect(all).not.toContain(TOKEN)
  })
})
