// The tunnel on loopback: frps and frpc stand-ins run from the TOML files lib/frp.mts generates
// and forward 127.0.0.1:<remotePort> to a local HTTP server, with the tunnel identity checked.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frpcToml, frpsToml } from '../../lib/frp.mts'
import { ensureTunnelIdentity, type TunnelIdentity } from '../../lib/tunnel-identity.mts'
import { canConnect, freePort, httpGet, type Listening, listenLocal, scratchDir } from '../helpers/common.ts'
import { listeningAddresses, type RunningFrp, startFrp, waitForLog } from '../helpers/frp.ts'

const token = 'T0k3n'.repeat(8)
let dir: string
let id: TunnelIdentity
let backend: Listening | undefined
let localPort: number
let bindPort: number
let remotePort: number
const running: RunningFrp[] = []

function writeServer(name: string, extra: { tokenFile?: string } = {}): string {
  const tokenFile = extra.tokenFile ?? path.join(dir, 'frps.token')
  if (!fs.existsSync(tokenFile)) fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 })
  const file = path.join(dir, `${name}.toml`)
  fs.writeFileSync(
    file,
    frpsToml({
      bindAddr: '127.0.0.1',
      bindPort,
      remotePort,
      tokenFile,
      certFile: id.certFile,
      keyFile: id.keyFile,
      logFile: path.join(dir, `${name}.log`),
    }),
  )
  return file
}

function writeClient(name: string, o: { token?: string; ca?: string; serverName?: string } = {}): string {
  const file = path.join(dir, `${name}.toml`)
  fs.writeFileSync(
    file,
    frpcToml({
      serverAddr: '127.0.0.1',
      serverPort: bindPort,
      token: o.token ?? token,
      localPort,
      remotePort,
      logFile: path.join(dir, `${name}.log`),
      ...(o.ca ? { trustedCaFile: o.ca, serverName: o.serverName ?? 'vps.example.com' } : {}),
    }),
  )
  return file
}

beforeAll(async () => {
  dir = scratchDir('frp-tunnel-')
  id = await ensureTunnelIdentity({ dir: path.join(dir, 'tls'), serverName: 'vps.example.com' })
  backend = await listenLocal(http.createServer((_req, res) => res.end('ok')))
  localPort = backend.port
  bindPort = await freePort()
  remotePort = await freePort()
  running.push(startFrp('frps', writeServer('frps')))
  await waitForLog(path.join(dir, 'frps.log'), /frps started successfully/)
})

afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()))
  await backend?.close()
})

describe('tunnel through the frp stand-ins', () => {
  it('forwards remotePort on 127.0.0.1 to the local service, verifying frps against the CA', async () => {
    const client = startFrp('frpc', writeClient('frpc', { ca: id.caFile }))
    running.push(client)
    const log = await waitForLog(path.join(dir, 'frpc.log'), /start proxy success/)
    expect(log).toMatch(/login to server success, get run id \[\w+\]/)
    const { status, body } = await httpGet(remotePort, '127.0.0.1', '/_health')
    expect({ status, body }).toEqual({ status: 200, body: 'ok' })
    expect(listeningAddresses(remotePort)).toEqual([`127.0.0.1:${remotePort}`])
    expect(await canConnect(remotePort, '::1', 2000)).toBe(false)
    expect(fs.readFileSync(path.join(dir, 'frps.log'), 'utf8')).toMatch(
      /new proxy \[posthog\] type \[tcp\] success/,
    )
    await client.stop()
    await waitForLog(path.join(dir, 'frps.log'), /client exit success/)
  })

  it('refuses a server whose certificate does not carry the expected name', async () => {
    const client = startFrp(
      'frpc',
      writeClient('frpc-wrong-name', { ca: id.caFile, serverName: 'evil.example.com' }),
    )
    running.push(client)
    const log = await waitForLog(path.join(dir, 'frpc-wrong-name.log'), /connect to server error/)
    expect(log).not.toMatch(/login to server success/)
    await client.stop()
  })

  it('logs the token mismatch on both sides and keeps retrying (loginFailExit = false)', async () => {
    const client = startFrp('frpc', writeClient('frpc-bad-token', { token: 'x'.repeat(40) }))
    running.push(client)
    await waitForLog(
      path.join(dir, 'frpc-bad-token.log'),
      /connect to server error: token in login doesn't match token from configuration[\s\S]*try to connect/,
    )
    expect(fs.readFileSync(path.join(dir, 'frps.log'), 'utf8')).toMatch(
      /register control error: token in login doesn't match token from configuration/,
    )
    expect(client.child.exitCode).toBeNull()
    await client.stop()
  })
})
