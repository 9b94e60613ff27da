// Test helpers around frp: the real frp 0.70.1 from ../shared/tools where it is present, the
// `verify`-only stand-in (test/fakes/frp.mjs) where it is not. Start frps/frpc from TOML files,
// run their `verify`, wait for their log lines, see which addresses listen, run a step script.
// Free ports and polling: ./common.ts.
//
//   if (needRealFrp('the tunnel tests')) { const frps = startFrp(REAL_FRPS, '/tmp/x/frps.toml'); ... }
//   await waitForLog(logFile, /start proxy success/)
import fs from 'node:fs'
import path from 'node:path'
import { type Daemon, runProcess, startDaemon, waitFor } from './common.ts'
import { REAL_FRPC, REAL_FRPS } from './shared.ts'

export { REAL_FRPC, REAL_FRPS }
/** The version the real binaries in ../shared report (`frps --version`). */
export const REAL_FRP_VERSION = '0.70.1'
export const HAVE_REAL_FRP = Boolean(REAL_FRPS && REAL_FRPC)
/** The stand-in that answers `--version` and `verify` only. */
export const FAKE_FRP = path.resolve(process.cwd(), 'test/fakes/frp.mjs')

const told = new Set<string>()

/**
 * Whether the real frp can run here; when not, says once (per test file) what is skipped or
 * replaced and why, e.g. `needRealFrp('the tunnel tests', 'skipped')`.
 */
export function needRealFrp(what: string, outcome = 'skipped'): boolean {
  if (HAVE_REAL_FRP) return true
  const why =
    process.platform === 'linux' && process.arch === 'x64'
      ? `../shared/tools/linux-amd64/frps and frpc are missing (a plain clone has no ../shared)`
      : `the real frp in ../shared is built for linux/amd64, not ${process.platform}/${process.arch}`
  const line = `${outcome} ${what}: ${why}`
  if (!told.has(line)) {
    told.add(line)
    console.warn(line)
  }
  return false
}

export type RunningFrp = Daemon

/** Runs an frp binary (real, or installed from a test release) on `configFile`. */
export function startFrp(bin: string, configFile: string): RunningFrp {
  return startDaemon(bin, ['-c', configFile])
}

/** `frps verify -c FILE` / `frpc verify -c FILE` with the real binary when present, else the stand-in. */
export async function verifyConfig(
  role: 'frpc' | 'frps',
  file: string,
): Promise<{ ok: boolean; out: string }> {
  const real = role === 'frps' ? REAL_FRPS : REAL_FRPC
  const [cmd, args] = real
    ? [real, ['verify', '-c', file]]
    : [process.execPath, [FAKE_FRP, role, 'verify', '-c', file]]
  const r = await runProcess(cmd, args, { timeoutMs: 20_000 })
  return { ok: r.code === 0, out: r.output.trim() }
}

export function waitForLog(file: string, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
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
