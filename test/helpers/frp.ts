// Test helpers around the frp stand-in (test/fakes/frp.mjs): start frps/frpc from generated
// TOML files, wait for their log lines, find free loopback ports. Used by the tunnel tests and
// the whole-public-path e2e test.
//
//   const frps = startFrp('frps', '/tmp/x/frps.toml')   // logs go where the file's log.to says
//   await waitForLog(logFile, /start proxy success/)
//   frps.stop()
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

export const FAKE_FRP = path.resolve(process.cwd(), 'test/fakes/frp.mjs')

export interface RunningFrp {
  child: ChildProcess
  /** What the process printed (console logs, errors). */
  output: () => string
  stop: () => Promise<void>
}

export function startFrp(role: 'frpc' | 'frps', configFile: string, env: NodeJS.ProcessEnv = {}): RunningFrp {
  const child = spawn(process.execPath, [FAKE_FRP, role, '-c', configFile], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout?.on('data', (d) => {
    out += d
  })
  child.stderr?.on('data', (d) => {
    out += d
  })
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

export async function waitFor<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export function waitForLog(file: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  return waitFor(
    () => {
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''
      return pattern.test(text) ? text : undefined
    },
    `${pattern} in ${file}`,
    timeoutMs,
  )
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** Local addresses (host:port) listening on `port` per /proc/net/tcp{,6} (Linux). */
export function listeningAddresses(port: number): string[] {
  const out: string[] = []
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    if (!fs.existsSync(file)) continue
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols[3] !== '0A') continue // TCP_LISTEN
      const [hexIp, hexPort] = (cols[1] ?? '').split(':')
      if (!hexIp || Number.parseInt(hexPort ?? '', 16) !== port) continue
      out.push(`${v6 ? decodeV6(hexIp) : decodeV4(hexIp)}:${port}`)
    }
  }
  return out
}

function decodeV4(hex: string): string {
  return [3, 2, 1, 0].map((i) => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.')
}

function decodeV6(hex: string): string {
  if (/^0{32}$/.test(hex)) return '[::]'
  if (hex === '00000000000000000000000001000000') return '[::1]'
  return `[${hex}]`
}

export interface Run {
  code: number | null
  out: string
}

/** Runs a step script (`node --import tsx`) from the project root with the given environment (async: the release server lives here). */
export function runStep(
  script: string,
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60_000,
    })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      out += d
    })
    child.stdin.end(input ?? '')
    child.on('close', (code) => resolve({ code, out }))
  })
}
