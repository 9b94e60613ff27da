// The tunnel on loopback with the real frp 0.70.1 (../shared/tools): frps and frpc run from the
// TOML files lib/tunnel/frp.mts generates (each passes the real `verify -c` first) and forward
// 127.0.0.1:<remotePort> to a local HTTP server. What frp itself must refuse is checked against
// frp itself: a wrong token, a port outside allowPorts, a foreign CA, a wrong server name. Without
// the real frp the file is skipped with one line (nothing else can tell what frp does). The
// doctor's catalog must recognise what the real frpc logs in each case.
// HTTP through nginx and the tunnel together: public-path.test.ts.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { matchLine } from '../../lib/monitor/catalog.mts'
import { frpcToml, frpsToml } from '../../lib/tunnel/frp.mts'
import { ensureTunnelIdentity, type TunnelIdentity } from '../../lib/tunnel/tunnel-identity.mts'
import {
  canConnect,
  freePort,
  httpGet,
  type Listening,
  listenLocal,
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

const haveFrp = needRealFrp('the tunnel tests with the real frp')
const token = 'T0k3n'.repeat(8)
const SERVER_NAME = 'vps.example.com'
let dir: string
let id: TunnelIdentity
let foreign: TunnelIdentity
let backend: Listening | undefined
let localPort: number
let bindPort: number
let remotePort: number
let frps: RunningFrp | undefined
const clients: RunningFrp[] = []
const frpsLog = () => path.join(dir, 'frps.log')

async function writeServer(): Promise<string> {
  const tokenFile = path.join(dir, 'frps.token')
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })
  const file = path.join(dir, 'frps.toml')
  fs.writeFileSync(
    file,
    frpsToml({
      bindAddr: '127.0.0.1',
      bindPort,
      remotePort,
      tokenFile,
      certFile: id.certFile,
      keyFile: id.keyFile,
      logFile: frpsLog(),
    }),
  )
  expect(await verifyConfig('frps', file)).toMatchObject({ ok: true })
  return file
}

interface ClientOptions {
  token?: string
  ca?: string
  serverName?: string
  remotePort?: number
}

/** Writes, verifies and starts an frpc; returns its log file. */
async function startClient(name: string, o: ClientOptions = {}): Promise<string> {
  const file = path.join(dir, `${name}.toml`)
  const log = path.join(dir, `${name}.log`)
  fs.writeFileSync(
    file,
    frpcToml({
      serverAddr: '127.0.0.1',
      serverPort: bindPort,
      token: o.token ?? token,
      localPort,
      remotePort: o.remotePort ?? remotePort,
      logFile: log,
      trustedCaFile: o.ca ?? id.caFile,
      serverName: o.serverName ?? SERVER_NAME,
    }),
  )
  expect(await verifyConfig('frpc', file)).toMatchObject({ ok: true })
  clients.push(startFrp(REAL_FRPC!, file))
  return log
}

async function stopClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.stop()))
}

function startServer(file: string): void {
  frps = startFrp(REAL_FRPS!, file)
}

/** The doctor's catalog entry for the first line of `log` that matches `pattern`. */
function diagnosis(log: string, pattern: RegExp): string | undefined {
  const line = fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .find((l) => pattern.test(l))
  return line === undefined ? 'no such line' : (matchLine(line)?.id ?? line)
}

const frpsLines = () => fs.readFileSync(frpsLog(), 'utf8').split('\n').length

/** What frps logged since line `from`. */
const frpsSince = (from: number) =>
  fs
    .readFileSync(frpsLog(), 'utf8')
    .split('\n')
    .slice(from - 1)
    .join('\n')

describe.runIf(haveFrp)('the tunnel with the real frp', () => {
  let frpsFile: string

  beforeAll(async () => {
    dir = scratchDir('frp-tunnel-')
    id = await ensureTunnelIdentity({ dir: path.join(dir, 'tls'), serverName: SERVER_NAME })
    foreign = await ensureTunnelIdentity({ dir: path.join(dir, 'foreign'), serverName: SERVER_NAME })
    backend = await listenLocal(http.createServer((_req, res) => res.end('ok')))
    localPort = backend.port
    bindPort = await freePort()
    remotePort = await freePort()
    frpsFile = await writeServer()
    startServer(frpsFile)
    await waitForLog(frpsLog(), /frps started successfully/)
  })

  afterAll(async () => {
    await stopClients()
    await frps?.stop()
    await backend?.close()
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('forwards remotePort on 127.0.0.1 only to the local service, frpc checking frps against the CA', async () => {
    const log = await startClient('frpc')
    await waitForLog(log, /\[posthog\] start proxy success/)
    expect(fs.readFileSync(log, 'utf8')).toMatch(/login to server success, get run id \[\w+\]/)
    const { status, body } = await httpGet(remotePort, '127.0.0.1', '/_health')
    expect({ status, body }).toEqual({ status: 200, body: 'ok' })
    expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
    expect(await canConnect(remotePort, '::1', 2000)).toBe(false)
    expect(fs.readFileSync(frpsLog(), 'utf8')).toMatch(/new proxy \[posthog\] type \[tcp\] success/)
    await stopClients()
    await waitForLog(frpsLog(), /client exit success/)
  })

  it('refuses a wrong token on both sides; frpc keeps retrying (loginFailExit = false)', async () => {
    const log = await startClient('frpc-bad-token', { token: 'x'.repeat(40) })
    await waitForLog(
      log,
      /connect to server error: token in login doesn't match token from configuration[\s\S]*try to connect/,
    )
    expect(fs.readFileSync(frpsLog(), 'utf8')).toMatch(
      /register control error: token in login doesn't match token from configuration/,
    )
    expect(clients[0]!.child.exitCode).toBeNull()
    expect(listeningAddresses(remotePort)).toEqual([])
    expect(diagnosis(log, /connect to server error/)).toBe('frp-token-mismatch')
    await stopClients()
  })

  it('refuses a port outside allowPorts', async () => {
    const other = await freePort()
    const log = await startClient('frpc-other-port', { remotePort: other })
    await waitForLog(log, /\[posthog\] start error: port not allowed/)
    expect(fs.readFileSync(frpsLog(), 'utf8')).toMatch(
      /new proxy \[posthog\] type \[tcp\] error: port not allowed/,
    )
    expect(listeningAddresses(other)).toEqual([])
    expect(diagnosis(log, /start error/)).toBe('frp-port-unavailable')
    await stopClients()
    await waitFor(
      () => /client exit success[\s\S]*client exit success/.test(fs.readFileSync(frpsLog(), 'utf8')),
      'frps to drop the client',
    )
  })

  // With a CA or server-name mismatch the real frpc mostly logs only `session shutdown` at the
  // default level, sometimes the x509 reason (it depends on which side of the session sees the
  // failed handshake first): README "Check it" and the doctor's catalog name both.
  it.each([
    ['a CA that did not sign frps', () => ({ ca: foreign.caFile })],
    ['a server name not on the certificate', () => ({ serverName: 'evil.example.com' })],
  ])('frpc itself refuses frps with %s', async (what, options) => {
    const from = frpsLines()
    const name = `frpc-${what.split(' ')[1]}`
    const log = await startClient(name, options())
    await waitForLog(
      log,
      /connect to server error: (?:session shutdown|tls: failed to verify certificate: x509: )/,
    )
    expect(fs.readFileSync(log, 'utf8')).not.toMatch(/login to server success/)
    expect(frpsSince(from)).not.toMatch(/client login info/)
    expect(listeningAddresses(remotePort)).toEqual([])
    expect(diagnosis(log, /connect to server error/)).toBe('frp-tls-mismatch')
    await stopClients()
  })

  it('frpc logs in again by itself after frps restarts, and the tunnel carries HTTP again', async () => {
    const log = await startClient('frpc-reconnect')
    await waitForLog(log, /start proxy success/)
    await frps!.stop()
    await waitForLog(log, /connect to server error: dial tcp [\d.:]+: connect: connection refused/)
    expect(diagnosis(log, /connection refused/)).toBe('frp-server-refused')
    startServer(frpsFile)
    await waitForLog(
      log,
      /start proxy success[\s\S]*login to server success[\s\S]*start proxy success/,
      30_000,
    )
    const { status, body } = await httpGet(remotePort, '127.0.0.1', '/_health')
    expect({ status, body }).toEqual({ status: 200, body: 'ok' })
    expect(clients[0]!.child.exitCode).toBeNull()
    // frpc may log `session shutdown` as frps goes away: the doctor must not call that a certificate problem
    const ids = fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .map((l) => matchLine(l)?.id)
    expect(ids).not.toContain('frp-tls-mismatch')
  })
})
