// Test scaffolding every black-box test needs, in one place: scratch dirs, free loopback ports,
// polling, spawning a process with a timeout and collecting its output, long-running processes,
// loopback HTTP servers, the fake docker's call log, .env files, and the no-secret-in-output check.
//
//   const res = await runProcess(process.execPath, ['--import', 'tsx', 'scripts/x.mts'], { env, timeoutMs: 30_000 })
//   expectNoSecrets(res, [SECRET, SALT])
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'vitest'

/** The project root: vitest, the benches and the scripts all run from it. */
export const ROOT = process.cwd()
/** test/fakes: the fake docker (and frpc/frps) to put first on PATH. */
export const FAKES = path.resolve(ROOT, 'test/fakes')
/** tsx's loader by absolute path, for `node --import` from any working directory. */
export const TSX = path.resolve(ROOT, 'node_modules/tsx/dist/loader.mjs')

/**
 * How long a spawned script may run before the harness calls it hung: far above any run's own
 * bounds on a busy 2-core machine, so it catches hangs without being a margin tests race.
 */
export const SCRIPT_TIMEOUT_MS = 150_000

/** A fresh directory under the system temp dir. */
export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
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

/** Polls `probe` every 50 ms until it returns something other than undefined/false. */
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

/** Whether a TCP connection to host:port opens within `timeoutMs`. */
/**
 * Waits until `reached()`, or until `running` ends: the point a test kills a process at. No clock:
 * a busy machine may take long to get there, and the test's own timeout bounds the wait. True
 * when the point was reached while the process still ran.
 */
export async function whileRunning(running: Promise<unknown>, reached: () => boolean): Promise<boolean> {
  let ended = false
  void running.finally(() => {
    ended = true
  })
  for (;;) {
    if (reached()) return true
    if (ended) return false
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Whether the fake docker has taken scenario rule `index` (it records that before a rule's delay). */
export function ruleTaken(scenarioFile: string, index: number): boolean {
  const file = fakeDockerStateFile(scenarioFile)
  if (!fs.existsSync(file)) return false
  try {
    return (JSON.parse(fs.readFileSync(file, 'utf8')).ruleUses?.[index] ?? 0) > 0
  } catch {
    return false // being written
  }
}

export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host })
    s.setTimeout(timeoutMs)
    s.on('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.on('error', () => resolve(false))
    s.on('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

// ---------------------------------------------------------------------------------------------
// Processes that end by themselves

export interface ProcessResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout and stderr interleaved in the order they arrived. */
  output: string
  ms: number
}

export interface ProcessOptions {
  cwd?: string
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string
  /** Killed with SIGKILL after this long (its process group when `detached`). */
  timeoutMs: number
  /** Own process group, so a timeout (or a test) can kill it with every child. */
  detached?: boolean
}

export interface StartedProcess {
  pid: number
  done: Promise<ProcessResult>
  /** SIGTERM to the process. */
  kill(): void
}

export function startProcess(cmd: string, args: string[], opts: ProcessOptions): StartedProcess {
  const started = Date.now()
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: opts.detached,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  let output = ''
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d
    output += d
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d
    output += d
  })
  if (opts.input !== undefined) child.stdin?.end(opts.input)
  const timer = setTimeout(() => {
    try {
      if (opts.detached) process.kill(-child.pid!, 'SIGKILL')
      else child.kill('SIGKILL')
    } catch {}
  }, opts.timeoutMs)
  const done = new Promise<ProcessResult>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, output, ms: Date.now() - started })
    })
  })
  return { pid: child.pid!, done, kill: () => child.kill('SIGTERM') }
}

/** Runs a process to its end (or its timeout) and collects its output; a non-zero exit is no error. */
export function runProcess(cmd: string, args: string[], opts: ProcessOptions): Promise<ProcessResult> {
  return startProcess(cmd, args, opts).done
}

// ---------------------------------------------------------------------------------------------
// Processes that run until stopped (servers, frp, pebble)

export interface Daemon {
  child: ChildProcess
  /** What the process printed so far, stdout and stderr together. */
  output: () => string
  stop: () => Promise<void>
}

export function startDaemon(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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

// ---------------------------------------------------------------------------------------------
// Loopback HTTP(S) servers

export interface Listening {
  port: number
  /** Drops open connections, then stops listening. */
  close: () => Promise<void>
}

/** Starts `server` on 127.0.0.1 (a random free port unless `port` is given). */
export async function listenLocal(server: http.Server, port = 0): Promise<Listening> {
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

export interface HttpAnswer {
  status: number
  body: string
  headers: http.IncomingHttpHeaders
}

/** Reads a whole response. */
export function readAnswer(res: http.IncomingMessage): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('error', reject)
    res.on('end', () =>
      resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }),
    )
  })
}

/** GET http://127.0.0.1:port/urlPath with `host` as the Host header. */
export function httpGet(port: number, host: string, urlPath: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, headers: { host }, timeout: 10_000 },
      (res) => readAnswer(res).then(resolve, reject),
    )
    req.on('timeout', () => req.destroy(new Error(`timeout: ${urlPath}`)))
    req.on('error', reject)
  })
}

// ---------------------------------------------------------------------------------------------
// Project files

/** Writes KEY=value lines (mode 0600, like the toolkit's own .env), after an optional comment. */
export function writeEnvFile(file: string, values: Record<string, string>, comment?: string): void {
  const lines = Object.entries(values).map(([k, v]) => `${k}=${v}`)
  if (comment !== undefined) lines.unshift(`# ${comment}`)
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 })
}

const COMPOSE_GLOBALS_WITH_VALUE = new Set([
  '-f',
  '--file',
  '-p',
  '--project-name',
  '--project-directory',
  '--env-file',
])

/** A docker call with compose's global flags dropped: `compose -f x -p y up -d web` -> `compose up -d web`. */
export function withoutComposeGlobals(argv: string[]): string[] {
  if (argv[0] !== 'compose') return argv
  let i = 1
  while (i < argv.length && COMPOSE_GLOBALS_WITH_VALUE.has(argv[i]!)) i += 2
  return ['compose', ...argv.slice(i)]
}

/** Where the fake docker keeps what its calls changed (service states), unless FAKE_DOCKER_STATE says. */
export function fakeDockerStateFile(scenarioFile: string): string {
  return `${scenarioFile}.state.json`
}

/** Writes the fake docker's scenario (FAKE_DOCKER_SCENARIO) and forgets what earlier calls changed. */
export function writeScenario(scenarioFile: string, scenario: object): void {
  fs.writeFileSync(scenarioFile, JSON.stringify(scenario))
  fs.rmSync(fakeDockerStateFile(scenarioFile), { force: true })
}

/** The fake docker's calls so far (its FAKE_DOCKER_LOG jsonl), compose globals dropped. */
export function dockerCalls(logFile: string): string[][] {
  if (!fs.existsSync(logFile)) return []
  return fs
    .readFileSync(logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => withoutComposeGlobals((JSON.parse(l) as { argv: string[] }).argv))
}

// ---------------------------------------------------------------------------------------------
// Secrets

type Output = string | { stdout: string; stderr: string }

function text(output: Output): string {
  return typeof output === 'string' ? output : output.stdout + output.stderr
}

/** The secret values that appear in the output (stdout and stderr together). */
export function secretsFound(output: Output, secrets: string[]): string[] {
  if (secrets.some((s) => s === '')) throw new Error('an empty secret matches every output')
  return secrets.filter((s) => text(output).includes(s))
}

/** Fails the test when any secret value appears in the output (stdout and stderr together). */
export function expectNoSecrets(output: Output, secrets: string[]): void {
  expect(secretsFound(output, secrets), 'a secret value appeared in the output').toEqual([])
}

/** What a stand-in for the proxy answers on a route: a status, or never (`hang`). */
export type RouteAnswer = number | 'hang'

/**
 * The proxy's other routes on a healthy stack: capture, flags and replay answer a POST without a
 * project token 401 (as capture-rs and feature-flags do), the app redirects to its login page.
 */
export const HEALTHY_ROUTES: Record<string, RouteAnswer> = {
  '/e/': 401,
  '/i/v0/e/': 401,
  '/batch': 401,
  '/flags': 401,
  '/s/': 401,
  '/': 302,
}
