// Test helpers around the frp stand-in (test/fakes/frp.mjs): start frps/frpc from generated
// TOML files, wait for their log lines, see which addresses listen, run a step script. Used by
// the tunnel tests and the whole-public-path e2e test. Free ports and polling: ./common.ts.
//
//   const frps = startFrp('frps', '/tmp/x/frps.toml')   // logs go where the file's log.to says
//   await waitForLog(logFile, /start proxy success/)
//   frps.stop()
import fs from 'node:fs'
import path from 'node:path'
import { type Daemon, runProcess, startDaemon, waitFor } from './common.ts'

export const FAKE_FRP = path.resolve(process.cwd(), 'test/fakes/frp.mjs')

export type RunningFrp = Daemon

export function startFrp(role: 'frpc' | 'frps', configFile: string, env: NodeJS.ProcessEnv = {}): RunningFrp {
  return startDaemon(process.execPath, [FAKE_FRP, role, '-c', configFile], env)
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
export async function runStep(
  script: string,
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<Run> {
  const r = await runProcess(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, ...env },
    input: input ?? '',
    timeoutMs: 60_000,
  })
  return { code: r.code, out: r.output }
}
