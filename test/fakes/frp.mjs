// Stand-in for frp's `frpc` and `frps` binaries (fatedier/frp v0.70.1) in tests. Plain node, no tsx.
//
//   node frp.mjs frpc|frps --version             prints the version (env FAKE_FRP_VERSION, default 0.70.1)
//   node frp.mjs frpc|frps verify -c FILE        strict check like frp's: unknown key, missing file ⇒ exit 1;
//                                                success prints "frpc: the configuration file FILE syntax is ok"
//   node frp.mjs frps -c frps.toml               runs the server; node frp.mjs frpc -c frpc.toml runs the client
//
// The wrappers `test/fakes/frpc` and `test/fakes/frps` beside this file do the first argument for you.
// Fake release archives (test/helpers/frp-release.ts) embed the absolute path of this file.
//
// What run mode implements (enough for the whole public path on loopback):
// - frps listens on bindAddr:bindPort with TLS (transport.tls.certFile/keyFile, else a throw-away
//   self-signed certificate made with openssl at start, as frps does), checks the token
//   (auth.token or auth.tokenSource file; privilegeKey = md5(token + timestamp) as in frp), opens
//   each tcp proxy's remotePort on proxyBindAddr (default = bindAddr), honours allowPorts.
// - frpc connects (TLS unless transport.tls.enable = false; verifies frps against
//   transport.tls.trustedCaFile + serverName when set, otherwise skips verification like frp),
//   logs in, registers its tcp proxies and forwards each user connection to localIP:localPort.
//   loginFailExit (default true) ends frpc after a failed first login; false keeps retrying.
// - Wire protocol (ours, not frp's): one JSON line per message on the control connection; one
//   new TLS connection per user connection ("work connection"), which starts with one JSON line
//   and then carries the raw bytes.
// - Log lines copy frp's messages (reference tunnel-proxy-tls.md §3) with frp's line shape, to
//   log.to (a file, appended) or stdout for "console". healthCheck keys are accepted but not run.
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parse } from 'smol-toml'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const FIXTURES = process.env.FAKE_FRP_FIXTURES || path.resolve(HERE, '../../../shared/fixtures/frp')

// ---------------------------------------------------------------------------------------------
// Keys: what frp's strict parser accepts, taken from its own full examples (set or commented out).

/** Dotted key paths of a parsed TOML value; arrays of tables as `name[].key`. */
export function keyPaths(value, prefix = '') {
  if (Array.isArray(value))
    return value.flatMap((v) => (v && typeof v === 'object' ? keyPaths(v, `${prefix}[]`) : []))
  if (!value || typeof value !== 'object' || value instanceof Date) return []
  return Object.entries(value).flatMap(([k, v]) => {
    const key = prefix ? `${prefix}.${k}` : k
    const isTable = v && typeof v === 'object' && !(v instanceof Date)
    const nested = isTable ? keyPaths(v, key) : []
    return isTable && !Array.isArray(v) ? nested : [key, ...nested]
  })
}

/** Every key a full example names: the parsed document plus `# key = value` lines in comments. */
export function exampleKeys(text) {
  const keys = new Set(keyPaths(parse(text)))
  const arrays = new Set()
  let table = ''
  for (const line of text.split('\n')) {
    const header = /^\s*(\[\[?)\s*([\w.]+)\s*\]\]?\s*$/.exec(line)
    if (header) {
      const parts = header[2].split('.')
      let p = ''
      for (const part of parts) {
        p = p ? `${p}.${part}` : part
        if (arrays.has(p)) p = `${p}[]`
      }
      if (header[1] === '[[') {
        arrays.add(p)
        p = `${p}[]`
      }
      table = p
      continue
    }
    const commented = /^\s*#\s*([A-Za-z][\w.]*)\s*=\s*\S/.exec(line)
    if (commented) keys.add(table ? `${table}.${commented[1]}` : commented[1])
  }
  return keys
}

export function knownKeys(role) {
  return exampleKeys(fs.readFileSync(path.join(FIXTURES, `${role}_full_example.toml`), 'utf8'))
}

/** Reads and strictly checks a config; returns { config } or { error } with frp-like text. */
export function loadConfig(role, file) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return { error: `open ${file}: no such file or directory` }
  }
  if (/^\s*\[common\]\s*$/m.test(text))
    return {
      warning:
        'WARNING: ini format is deprecated and the support will be removed in the future, please use yaml/json/toml format instead!',
      error: 'legacy ini format is not supported by this stand-in',
    }
  let config
  try {
    config = parse(text)
  } catch (e) {
    return { error: `toml: ${String(e.message).split('\n')[0]}` }
  }
  const known = knownKeys(role)
  for (const key of keyPaths(config)) {
    if (!known.has(key)) return { error: `json: unknown field "${key.split('.').at(-1).replace('[]', '')}"` }
  }
  if (config.auth?.token !== undefined && config.auth?.tokenSource !== undefined)
    return { error: 'cannot specify both auth.token and auth.tokenSource' }
  return { config }
}

// ---------------------------------------------------------------------------------------------
// Logging in frp's line shape: `2024-05-14 17:34:40.781 [I] [client/service.go:294] message`.

function makeLogger(config, where) {
  const to = config.log?.to ?? 'console'
  return (level, message) => {
    const d = new Date()
    const pad = (n, w = 2) => String(n).padStart(w, '0')
    const stamp = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
    const line = `${stamp} [${level}] [${where}] ${message}\n`
    if (to === 'console') process.stdout.write(line)
    else fs.appendFileSync(to, line)
  }
}

function privilegeKey(token, timestamp) {
  return createHash('md5').update(`${token}${timestamp}`).digest('hex')
}

function goDialError(err, addr) {
  const reason = { ECONNREFUSED: 'connect: connection refused', ETIMEDOUT: 'i/o timeout' }[err.code]
  return reason ? `dial tcp ${addr}: ${reason}` : String(err.message)
}

/** Calls `onMessage(obj)` for each JSON line; `onHeader(obj, socket)` instead stops at the first line. */
function readLines(socket, onMessage) {
  let buf = ''
  const onData = (chunk) => {
    buf += chunk.toString('utf8')
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try {
        onMessage(JSON.parse(line))
      } catch {
        socket.destroy()
      }
    }
  }
  socket.on('data', onData)
}

function readHeader(socket, onHeader) {
  let buf = Buffer.alloc(0)
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk])
    const i = buf.indexOf(10)
    if (i < 0) return
    socket.removeListener('data', onData)
    socket.pause()
    const rest = buf.subarray(i + 1)
    if (rest.length) socket.unshift(rest)
    let header
    try {
      header = JSON.parse(buf.subarray(0, i).toString('utf8'))
    } catch {
      socket.destroy()
      return
    }
    onHeader(header, socket)
  }
  socket.on('data', onData)
}

const send = (socket, msg) => socket.write(`${JSON.stringify(msg)}\n`)

function pipeBoth(a, b) {
  a.pipe(b)
  b.pipe(a)
  const end = () => {
    a.destroy()
    b.destroy()
  }
  a.on('error', end)
  b.on('error', end)
  a.on('close', end)
  b.on('close', end)
  a.resume()
  b.resume()
}

// ---------------------------------------------------------------------------------------------
// frps

function serverToken(config) {
  if (config.auth?.tokenSource?.type === 'file')
    return fs.readFileSync(config.auth.tokenSource.file.path, 'utf8').trim()
  return config.auth?.token ?? ''
}

function selfSignedCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-frps-'))
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=frps-random',
  ], { stdio: 'ignore', timeout: 20_000 })
  return { cert: fs.readFileSync(cert), key: fs.readFileSync(key) }
}

function portAllowed(config, port) {
  const rules = config.allowPorts
  if (!rules || rules.length === 0) return true
  return rules.some((r) => r.single === port || (r.start <= port && port <= r.end))
}

function runServer(config) {
  const log = makeLogger(config, 'server/service.go:237')
  const token = serverToken(config)
  const bindAddr = config.bindAddr ?? '0.0.0.0'
  const bindPort = config.bindPort ?? 7000
  const proxyBindAddr = config.proxyBindAddr ?? bindAddr
  const t = config.transport?.tls ?? {}
  const identity =
    t.certFile && t.keyFile
      ? { cert: fs.readFileSync(t.certFile), key: fs.readFileSync(t.keyFile) }
      : selfSignedCert()
  const proxies = new Map() // name -> { server, control }
  const pending = new Map() // work conn id -> user socket
  let nextId = 1

  const handleControl = (socket, login) => {
    const runId = randomBytes(8).toString('hex')
    log('I', `client login info: ip [${socket.remoteAddress}:${socket.remotePort}] version [${login.version}] run id [${runId}]`)
    send(socket, { type: 'LoginResp', runId })
    const mine = []
    readLines(socket, (msg) => {
      if (msg.type !== 'NewProxy') return
      const fail = (error) => {
        log('W', `new proxy [${msg.name}] type [${msg.proxyType}] error: ${error}`)
        send(socket, { type: 'NewProxyResp', name: msg.name, error })
      }
      if (proxies.has(msg.name)) return fail(`proxy [${msg.name}] already exists`)
      if (!portAllowed(config, msg.remotePort)) return fail('port not allowed')
      const listener = net.createServer((user) => {
        log('I', `[${msg.name}] get a user connection [${user.remoteAddress}:${user.remotePort}]`)
        user.pause()
        const id = nextId++
        pending.set(id, user)
        setTimeout(() => {
          if (pending.delete(id)) user.destroy()
        }, 10_000).unref()
        send(socket, { type: 'ReqWorkConn', id, proxyName: msg.name })
      })
      listener.once('error', () => fail('port unavailable'))
      listener.listen(msg.remotePort, proxyBindAddr, () => {
        proxies.set(msg.name, { server: listener })
        mine.push(msg.name)
        log('I', `tcp proxy listen port [${msg.remotePort}]`)
        log('I', `[${msg.name}] new proxy [${msg.name}] type [${msg.proxyType}] success`)
        send(socket, { type: 'NewProxyResp', name: msg.name })
      })
    })
    const close = () => {
      for (const name of mine.splice(0)) {
        proxies.get(name)?.server.close()
        proxies.delete(name)
      }
    }
    socket.on('close', () => {
      close()
      log('I', `[${runId}] client exit success`)
    })
    socket.on('error', () => socket.destroy())
    socket.resume()
  }

  const server = tls.createServer({ ...identity }, (socket) => {
    socket.on('error', () => socket.destroy())
    readHeader(socket, (msg, s) => {
      if (msg.privilegeKey !== privilegeKey(token, msg.timestamp)) {
        const error = "token in login doesn't match token from configuration"
        log('W', `register control error: ${error}`)
        send(s, { type: 'LoginResp', error })
        s.end()
        return
      }
      if (msg.type === 'Login') return handleControl(s, msg)
      if (msg.type === 'NewWorkConn') {
        const user = pending.get(msg.id)
        pending.delete(msg.id)
        if (!user) return s.destroy()
        return pipeBoth(user, s)
      }
      s.destroy()
    })
  })
  server.on('tlsClientError', () => {})
  server.listen(bindPort, bindAddr, () => {
    log('I', `frps tcp listen on ${bindAddr}:${bindPort}`)
    log('I', 'frps started successfully')
  })
  server.on('error', (e) => {
    log('E', `create server listener error, ${e.message}`)
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------------
// frpc

function runClient(config) {
  const log = makeLogger(config, 'client/service.go:294')
  const token = config.auth?.tokenSource?.type === 'file' ? serverToken(config) : (config.auth?.token ?? '')
  const addr = config.serverAddr ?? '0.0.0.0'
  const port = config.serverPort ?? 7000
  const t = config.transport?.tls ?? {}
  const loginFailExit = config.loginFailExit ?? true
  const proxies = (config.proxies ?? []).filter((p) => p.type === 'tcp' && p.enabled !== false)
  let everLoggedIn = false
  let retryMs = 1000

  const dial = () => {
    const base = { host: addr, port }
    if (t.enable === false) return net.connect(base)
    return tls.connect({
      ...base,
      servername: t.serverName ?? (net.isIP(addr) ? undefined : addr),
      ...(t.trustedCaFile
        ? { ca: fs.readFileSync(t.trustedCaFile), rejectUnauthorized: true }
        : { rejectUnauthorized: false }),
    })
  }
  const stamp = () => Math.floor(Date.now() / 1000)

  const failed = (error) => {
    log('W', `connect to server error: ${error}`)
    if (!everLoggedIn && loginFailExit) {
      log(
        'E',
        `login to the server failed: ${error}. With loginFailExit enabled, no additional retries will be attempted`,
      )
      process.exit(1)
    }
    setTimeout(connect, retryMs).unref()
    retryMs = Math.min(retryMs * 2, 10_000)
  }
  const keepAlive = setInterval(() => {}, 1 << 30)

  const openWorkConn = (runId, msg) => {
    const proxy = proxies.find((p) => p.name === msg.proxyName)
    if (!proxy) return
    const work = dial()
    work.on('error', () => work.destroy())
    work.once(t.enable === false ? 'connect' : 'secureConnect', () => {
      const ts = stamp()
      send(work, { type: 'NewWorkConn', runId, id: msg.id, timestamp: ts, privilegeKey: privilegeKey(token, ts) })
      const target = `${proxy.localIP ?? '127.0.0.1'}:${proxy.localPort}`
      const local = net.connect({ host: proxy.localIP ?? '127.0.0.1', port: proxy.localPort })
      local.once('error', (e) => {
        log('W', `[${proxy.name}] connect to local service [${target}] error: ${goDialError(e, target)}`)
        work.destroy()
      })
      local.once('connect', () => pipeBoth(local, work))
    })
  }

  function connect() {
    log('I', 'try to connect to server...')
    const socket = dial()
    let settled = false
    socket.once('error', (e) => {
      if (settled) return
      settled = true
      failed(e.code === 'ECONNRESET' || /EOF|socket hang up/i.test(e.message) ? 'EOF' : goDialError(e, `${addr}:${port}`))
    })
    socket.once(t.enable === false ? 'connect' : 'secureConnect', () => {
      const ts = stamp()
      send(socket, { type: 'Login', version: process.env.FAKE_FRP_VERSION || '0.70.1', timestamp: ts, privilegeKey: privilegeKey(token, ts) })
    })
    let runId
    readLines(socket, (msg) => {
      if (msg.type === 'LoginResp') {
        settled = true
        if (msg.error) {
          socket.destroy()
          return failed(msg.error)
        }
        runId = msg.runId
        everLoggedIn = true
        retryMs = 1000
        log('I', `[${runId}] login to server success, get run id [${runId}]`)
        for (const p of proxies) {
          log('I', `[${runId}] proxy added: [${p.name}]`)
          send(socket, { type: 'NewProxy', name: p.name, proxyType: p.type, remotePort: p.remotePort })
        }
      } else if (msg.type === 'NewProxyResp') {
        if (msg.error) log('W', `[${runId}] [${msg.name}] start error: ${msg.error}`)
        else log('I', `[${runId}] [${msg.name}] start proxy success`)
      } else if (msg.type === 'ReqWorkConn') {
        openWorkConn(runId, msg)
      }
    })
    socket.on('close', () => {
      if (!runId) {
        if (!settled) {
          settled = true
          failed('EOF')
        }
        return
      }
      log('I', `[${runId}] control is closed`)
      runId = undefined
      setTimeout(connect, retryMs).unref()
    })
  }
  void keepAlive
  connect()
}

// ---------------------------------------------------------------------------------------------

function main(argv) {
  const [role, ...args] = argv
  if (role !== 'frpc' && role !== 'frps') {
    process.stderr.write('usage: frp.mjs frpc|frps [verify] -c FILE | --version\n')
    return 2
  }
  if (args.includes('--version') || args.includes('-v')) {
    process.stdout.write(`${process.env.FAKE_FRP_VERSION || '0.70.1'}\n`)
    return 0
  }
  const ci = args.findIndex((a) => a === '-c' || a === '--config')
  const file = ci >= 0 ? args[ci + 1] : undefined
  if (args[0] === 'verify') {
    if (!file) {
      process.stdout.write(`${role}: the configuration file is not specified\n`)
      return 0
    }
    const { config, error, warning } = loadConfig(role, file)
    if (warning) process.stdout.write(`${warning}\n`)
    if (error) {
      process.stdout.write(`${error}\n`)
      return 1
    }
    void config
    process.stdout.write(`${role}: the configuration file ${file} syntax is ok\n`)
    return 0
  }
  if (!file) {
    process.stderr.write(`${role}: this stand-in needs -c FILE\n`)
    return 1
  }
  const { config, error } = loadConfig(role, file)
  if (error) {
    process.stderr.write(`${error}\n`)
    return 1
  }
  if (role === 'frps') runServer(config)
  else runClient(config)
  return undefined
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const code = main(process.argv.slice(2))
  if (code !== undefined) process.exitCode = code
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
}
