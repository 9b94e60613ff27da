// Test helpers for the whole public path on loopback: a stand-in PostHog (health, echo, WebSocket,
// server-sent events, big uploads), clients that verify TLS (and one that keeps asking while a
// site changes), a private nginx instance, Pebble + pebble-challtestsrv as the ACME server
// (reference tunnel-proxy-tls.md §7, Debian's pebble 2.4.0 flags), the site earlier versions wrote
// (for the migration test), and a plain TCP forwarder for when the real frp is missing.
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { acquireLock } from '../../lib/core/lock.mts'
import { canConnect, freePort, type HttpAnswer, readAnswer, startDaemon, waitFor } from './common.ts'

export function hasBinary(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && fs.existsSync(path.join(dir, name)))
}

// ---------------------------------------------------------------------------------------------
// Stand-in PostHog

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

function wsFrame(payload: Buffer, mask: boolean): Buffer {
  const len = payload.length
  const head = len < 126 ? Buffer.from([0x81, len]) : Buffer.from([0x81, 126, len >> 8, len & 0xff])
  if (!mask) return Buffer.concat([head, payload])
  head[1]! |= 0x80
  const key = randomBytes(4)
  return Buffer.concat([head, key, Buffer.from(payload.map((b, i) => b ^ key[i % 4]!))])
}

/** Reads one complete text frame from `buf`; undefined until it is complete. */
function readFrame(buf: Buffer): { payload: Buffer; rest: Buffer } | undefined {
  if (buf.length < 2) return undefined
  const masked = (buf[1]! & 0x80) !== 0
  let len = buf[1]! & 0x7f
  let offset = 2
  if (len === 126) {
    if (buf.length < 4) return undefined
    len = buf.readUInt16BE(2)
    offset = 4
  }
  const keyLen = masked ? 4 : 0
  if (buf.length < offset + keyLen + len) return undefined
  const key = buf.subarray(offset, offset + keyLen)
  const data = Buffer.from(buf.subarray(offset + keyLen, offset + keyLen + len))
  if (masked) for (let i = 0; i < data.length; i++) data[i]! ^= key[i % 4]!
  return { payload: data, rest: buf.subarray(offset + keyLen + len) }
}

export interface StandIn {
  port: number
  close: () => Promise<void>
}

/** PostHog as the tunnel sees it: /_health, /e/ echo, /ws WebSocket echo, /livestream/events SSE, /upload. */
export async function startStandIn(): Promise<StandIn> {
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    if (req.url === '/_health') return void res.end('ok')
    if (req.url?.startsWith('/livestream/')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      let n = 0
      const timer = setInterval(() => res.write(`data: event ${++n}\n\n`), 100)
      res.on('close', () => clearInterval(timer))
      return
    }
    let size = 0
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => {
      size += c.length
      if (req.url === '/e/') chunks.push(c)
    })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.url === '/e/') {
        const headers = {
          proto: req.headers['x-forwarded-proto'],
          forwardedFor: req.headers['x-forwarded-for'],
        }
        return void res.end(JSON.stringify({ echo: Buffer.concat(chunks).toString(), headers }))
      }
      if (req.url === '/upload') return void res.end(JSON.stringify({ bytes: size }))
      res.statusCode = 404
      res.end('{}')
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  server.on('upgrade', (req, socket) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}${WS_GUID}`).digest('base64')
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    )
    let buf: Buffer = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      for (let f = readFrame(buf); f; f = readFrame(buf)) {
        buf = f.rest
        socket.write(wsFrame(f.payload, false))
      }
    })
    socket.on('error', () => {})
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

// ---------------------------------------------------------------------------------------------
// Clients that verify the server against a CA file

export interface TlsTarget {
  host: string
  port: number
  ca: string
}

/**
 * A request to 127.0.0.1 for `t.host` (Host header and SNI), verifying the server against `t.ca`,
 * on a new connection: a kept-alive one could still end at a worker nginx is retiring after a reload.
 */
function tlsRequestOptions(t: TlsTarget, urlPath: string): https.RequestOptions {
  return {
    agent: false,
    host: '127.0.0.1',
    servername: t.host,
    port: t.port,
    path: urlPath,
    ca: t.ca,
    headers: { host: t.host },
  }
}

export function httpsRequest(
  t: TlsTarget,
  urlPath: string,
  opts: { method?: string; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { ...tlsRequestOptions(t, urlPath), method: opts.method ?? 'GET', timeout: opts.timeoutMs ?? 15_000 },
      (res) => readAnswer(res).then(resolve, reject),
    )
    req.on('timeout', () => req.destroy(new Error(`timeout: ${urlPath}`)))
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** Opens a WebSocket over TLS, sends `message`, returns the echoed text. */
export function webSocketEcho(t: TlsTarget, urlPath: string, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, servername: t.host, ca: t.ca })
    const timer = setTimeout(() => socket.destroy(new Error('WebSocket echo timed out')), 10_000)
    const key = randomBytes(16).toString('base64')
    let buf: Buffer = Buffer.alloc(0)
    let upgraded = false
    socket.on('secureConnect', () =>
      socket.write(
        `GET ${urlPath} HTTP/1.1\r\nHost: ${t.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    )
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.subarray(0, end).toString()
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`))
        const expected = createHash('sha1').update(`${key}${WS_GUID}`).digest('base64')
        if (!head.includes(`Sec-WebSocket-Accept: ${expected}`))
          return reject(new Error('bad Sec-WebSocket-Accept'))
        upgraded = true
        buf = buf.subarray(end + 4)
        socket.write(wsFrame(Buffer.from(message), true))
      }
      const frame = readFrame(buf)
      if (frame) {
        clearTimeout(timer)
        socket.destroy()
        resolve(frame.payload.toString())
      }
    })
    socket.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

/** Reads `count` server-sent events from a stream that never ends by itself. */
export function readEvents(t: TlsTarget, urlPath: string, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = https.get(tlsRequestOptions(t, urlPath), (res) => {
      let text = ''
      res.on('data', (c: Buffer) => {
        text += c
        const events = text.split('\n\n').filter((e) => e.startsWith('data: '))
        if (events.length >= count) {
          clearTimeout(timer)
          req.destroy()
          resolve(events.slice(0, count).map((e) => e.slice(6)))
        }
      })
    })
    const timer = setTimeout(() => req.destroy(new Error('event stream stalled')), 5_000)
    req.on('error', reject)
  })
}

/** The certificate the server presents for `t.host` (verified against `t.ca`), as DER. */
export function servedCertificate(t: TlsTarget): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: t.port, servername: t.host, ca: t.ca }, () => {
      const der = socket.getPeerCertificate().raw
      socket.destroy()
      resolve(der)
    })
    socket.setTimeout(10_000, () => socket.destroy(new Error('TLS handshake timed out')))
    socket.on('error', reject)
  })
}

/** Whether a handshake limited to `version` succeeds (the client allows old versions, so a refusal is the server's). */
export function tlsHandshake(t: TlsTarget, version: tls.SecureVersion): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect(
      {
        host: '127.0.0.1',
        port: t.port,
        servername: t.host,
        ca: t.ca,
        minVersion: version,
        maxVersion: version,
        ciphers: 'DEFAULT@SECLEVEL=0',
      },
      () => {
        const protocol = socket.getProtocol() ?? 'unknown'
        socket.destroy()
        resolve(protocol)
      },
    )
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')))
    socket.on('error', (e) => resolve(`refused: ${e.message}`))
  })
}

export interface Poller {
  /** Stops asking and returns what every request gave: `200 ok` for a good answer. */
  stop: () => Promise<string[]>
}

/** Asks `GET urlPath` over verified TLS again and again until stopped, one request at a time. */
export function pollHttps(t: TlsTarget, urlPath: string): Poller {
  const results: string[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      try {
        const res = await httpsRequest(t, urlPath, { timeoutMs: 10_000 })
        results.push(`${res.status} ${res.body}`)
      } catch (e) {
        results.push(`failed: ${(e as Error).message}`)
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return results
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Without the real frp: a plain loopback TCP forwarder carries remotePort to the stand-in PostHog

export function forwardPort(listenPort: number, targetPort: number): Promise<{ close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(listenPort, '127.0.0.1', () =>
      resolve({
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy()
            server.close(() => done())
          }),
      }),
    )
  })
}

// ---------------------------------------------------------------------------------------------
// The site frps-setup wrote before the toolkit owned the whole file (certbot --nginx then edited
// it in place): a port-80 block proxying into the tunnel, built by the earlier renderer.

export function legacySite(domain: string, upstreamPort: number, listen: string[]): string {
  const upstream = `http://127.0.0.1:${upstreamPort}`
  return `# PostHog at ${domain} through the frp tunnel, written by posthog-homelab (remote/frps-setup.mts).
# Lines marked "# managed by Certbot" are certbot's: re-running the setup keeps them.
# Hand edits survive a re-run with the same settings; changed settings regenerate the file
# (the previous one is kept as a .bak-<time> copy next to it).
# posthog-homelab core-sha256: 81362421afc59ad6

map $http_upgrade $connection_upgrade {
    default upgrade;
    '' close;
}

server {
${listen.map((l) => `    listen ${l};`).join('\n')}
    server_name ${domain};

    # PostHog's proxy reference: support 64 MB request bodies (nginx's default 1m gives 413)
    client_max_body_size 64m;
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    # nginx is the first hop: overwrite X-Forwarded-For so clients can't spoof their IP
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Port $server_port;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_read_timeout 300s;
    proxy_send_timeout 300s;

    location / {
        proxy_pass ${upstream};
    }

    # server-sent events (livestream): unbuffered, long-lived
    location /livestream {
        proxy_pass ${upstream};
        proxy_buffering off;
        proxy_cache off;
        proxy_read_timeout 3600s;
    }
}
`
}

// ---------------------------------------------------------------------------------------------
// Pebble

export interface Pebble {
  directoryUrl: string
  /** CA of Pebble's own HTTPS listener: REQUESTS_CA_BUNDLE for certbot. */
  listenerCaFile: string
  /** Pebble's issuing root (regenerated at every start): to verify issued certificates. */
  rootPem: () => Promise<string>
  /** Fake DNS: answer `host` with `ip` (every other name resolves to 127.0.0.1). */
  addA: (host: string, ip: string) => Promise<void>
  stop: () => Promise<void>
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore', timeout: 30_000 })
}

/** Makes a throw-away CA and a `localhost` certificate signed by it (files in `dir`). */
export function makeLocalhostCert(dir: string): { ca: string; cert: string; key: string } {
  fs.mkdirSync(dir, { recursive: true })
  openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2']
      .concat(['-subj', '/CN=test CA', '-addext', 'basicConstraints=critical,CA:TRUE'])
      .concat(['-addext', 'keyUsage=critical,keyCertSign,cRLSign']),
    dir,
  )
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'localhost.key',
      '-out',
      'localhost.csr',
      '-subj',
      '/CN=localhost',
    ],
    dir,
  )
  fs.writeFileSync(
    path.join(dir, 'ext.cnf'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  )
  openssl(
    ['x509', '-req', '-in', 'localhost.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
      '-out',
      'localhost.pem',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    ]),
    dir,
  )
  return {
    ca: path.join(dir, 'ca.pem'),
    cert: path.join(dir, 'localhost.pem'),
    key: path.join(dir, 'localhost.key'),
  }
}

function getText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca, timeout: 5000 }, (res) => {
        let text = ''
        res.on('data', (c) => {
          text += c
        })
        res.on('end', () => resolve(text))
      })
      .on('error', reject)
  })
}

/** Starts pebble-challtestsrv (fake DNS) and pebble; HTTP-01 validation goes to `httpPort`. */
export async function startPebble(dir: string, httpPort: number): Promise<Pebble> {
  const certs = makeLocalhostCert(path.join(dir, 'certs'))
  const [acme, mgmt, tlsPort, dns, dnsMgmt] = await Promise.all([1, 2, 3, 4, 5].map(() => freePort()))
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acme}`,
      managementListenAddress: `127.0.0.1:${mgmt}`,
      certificate: certs.cert,
      privateKey: certs.key,
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }
  const configFile = path.join(dir, 'pebble-config.json')
  fs.writeFileSync(configFile, JSON.stringify(config))
  const chall = startDaemon('pebble-challtestsrv', [
    ...['-dns01', `127.0.0.1:${dns}`, '-http01', '', '-https01', '', '-tlsalpn01', ''],
    ...['-management', `127.0.0.1:${dnsMgmt}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
  ])
  const pebble = startDaemon('pebble', ['-config', configFile, '-dnsserver', `127.0.0.1:${dns}`], {
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
  })
  const stop = async () => {
    await Promise.all([pebble.stop(), chall.stop()])
  }
  try {
    await waitFor(() => canConnect(acme!), 'pebble to listen', 15_000)
    await waitFor(() => canConnect(dnsMgmt!), 'pebble-challtestsrv to listen', 15_000)
  } catch (e) {
    await stop()
    throw new Error(`${(e as Error).message}\npebble: ${pebble.output()}\nchalltestsrv: ${chall.output()}`)
  }
  return {
    directoryUrl: `https://localhost:${acme}/dir`,
    listenerCaFile: certs.ca,
    rootPem: () => getText(`https://localhost:${mgmt}/roots/0`, fs.readFileSync(certs.ca, 'utf8')),
    addA: async (host, ip) => {
      const res = await fetch(`http://127.0.0.1:${dnsMgmt}/add-a`, {
        method: 'POST',
        body: JSON.stringify({ host, addresses: [ip] }),
        signal: AbortSignal.timeout(5000),
      })
      if (!res.ok) throw new Error(`challtestsrv add-a: ${res.status}`)
    },
    stop,
  }
}

// ---------------------------------------------------------------------------------------------
// A private nginx: own prefix, pid, logs, temp dirs; sites-available + sites-enabled like Debian.

export interface Nginx {
  root: string
  conf: string
  sitesAvailable: string
  sitesEnabled: string
  /** `-c <conf>`, for `nginx -t` and `-s reload`. */
  args: string[]
  start: () => void
  /** How many times nginx has (re)started its workers: a reload by anyone adds one. */
  generations: () => number
  /** Waits until only workers newer than generation `before` accept connections (after a reload someone else sent). */
  reloaded: (before: number) => Promise<void>
  /** Reloads and waits until the master has started workers with the new configuration. */
  reload: () => Promise<void>
  stop: () => void
}

/**
 * Serialises tests that need a fixed port (80) across vitest workers and concurrent runs on one
 * machine: an atomic mkdir lock, taken over when its owner is gone.
 */
export async function holdPortLock(name: string, timeoutMs: number): Promise<() => void> {
  const dir = path.join(os.tmpdir(), `posthog-homelab-${name}.lock`)
  return waitFor(
    () => {
      try {
        return acquireLock(dir, `test ${name}`)
      } catch {
        return undefined
      }
    },
    `the ${name} lock (${dir})`,
    timeoutMs,
  )
}

export function makeNginx(root: string): Nginx {
  const sitesAvailable = path.join(root, 'sites-available')
  const sitesEnabled = path.join(root, 'sites-enabled')
  const conf = path.join(root, 'nginx.conf')
  for (const d of [sitesAvailable, sitesEnabled, path.join(root, 'conf.d'), path.join(root, 'tmp')])
    fs.mkdirSync(d, { recursive: true })
  const isRoot = process.getuid?.() === 0
  const text = [
    isRoot ? 'user root;' : '',
    'worker_processes 1;',
    `pid ${root}/nginx.pid;`,
    `error_log ${root}/error.log notice;`,
    'events { worker_connections 256; }',
    'http {',
    '    access_log off;',
    `    client_body_temp_path ${root}/tmp/body;`,
    `    proxy_temp_path ${root}/tmp/proxy;`,
    `    fastcgi_temp_path ${root}/tmp/fastcgi;`,
    `    uwsgi_temp_path ${root}/tmp/uwsgi;`,
    `    scgi_temp_path ${root}/tmp/scgi;`,
    `    include ${root}/conf.d/*.conf;`,
    `    include ${sitesEnabled}/*;`,
    '}',
    '',
  ].join('\n')
  fs.writeFileSync(conf, text)
  const args = ['-c', conf]
  const run = (extra: string[]) =>
    execFileSync('nginx', [...args, ...extra], { stdio: 'pipe', timeout: 15_000 })
  const log = path.join(root, 'error.log')
  const count = (pattern: RegExp) =>
    fs.existsSync(log) ? (fs.readFileSync(log, 'utf8').match(pattern) ?? []).length : 0
  const generations = () => count(/start worker processes/g)
  // Until a retiring worker logs this (and closes its listening sockets right after), it still
  // accepts new connections with the old configuration (one worker per generation here).
  const retired = () => count(/gracefully shutting down/g)
  const reloaded = async (before: number) => {
    await waitFor(
      () => generations() > before && retired() >= generations() - 1,
      'nginx to reload and retire the old workers',
      15_000,
    )
  }
  return {
    root,
    conf,
    sitesAvailable,
    sitesEnabled,
    args,
    start: () => run([]),
    generations,
    reloaded,
    reload: async () => {
      const before = generations()
      run(['-s', 'reload'])
      await reloaded(before)
    },
    stop: () => {
      try {
        run(['-s', 'stop'])
      } catch {
        // not running
      }
    },
  }
}
