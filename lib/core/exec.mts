// The command runner: every external command (docker, git, nginx, certbot, openssl, systemctl ...)
// runs as an argument vector, spawned directly, never through a shell. No shell means no quoting
// to get wrong and no ~/.bashrc: under cron (no SHLVL) a shell given a socket as stdin sources it,
// which slows every call and lets whatever it prints corrupt the output parsed here. stdin is
// /dev/null unless input is given; every call has a timeout; `--debug` shows each argv (masked).
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process'

export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h'}`

export interface RunOptions {
  /** Killed (SIGTERM, then SIGKILL 2 s later) after this long; ms or e.g. '30s', '15m'. */
  timeout?: Duration
  /** Resolve with the result instead of rejecting when the command fails. */
  nothrow?: boolean
  /** Written to stdin, which is then closed. */
  input?: string | Buffer
  cwd?: string
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv
  /** File descriptors to use instead of capturing: e.g. stdout into an open file. */
  stdin?: number
  stdout?: number
  /** Passed to the child's stdout and stderr live (long installs); nothing is captured then. */
  inherit?: boolean
}

export interface CommandResult {
  argv: string[]
  stdout: string
  stderr: string
  /** null when the command was killed by a signal (a timeout) or could not start. */
  exitCode: number | null
  signal: NodeJS.Signals | null
  ok: boolean
  timedOut: boolean
  durationMs: number
}

/** A command that failed (not run with `nothrow`): the result, and one line saying why. */
export class CommandFailed extends Error {
  readonly result: CommandResult
  constructor(result: CommandResult) {
    super(`${result.argv[0]} failed (${describeExit(result)}): ${lastLine(result) || 'no output'}`)
    this.result = result
  }
}

export const DEFAULT_TIMEOUT: Duration = '60s'
const KILL_GRACE_MS = 2000

export function durationMs(d: Duration): number {
  if (typeof d === 'number') return d
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d)
  if (!m) throw new Error(`'${d}' is not a duration`)
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
}

/** `exit 3`, `timed out after 30 s`, `killed by SIGKILL`. */
export function describeExit(
  r: Pick<CommandResult, 'exitCode' | 'signal' | 'timedOut' | 'durationMs'>,
): string {
  if (r.timedOut) return `timed out after ${Math.round(r.durationMs / 1000)} s`
  if (r.exitCode === null) return r.signal ? `killed by ${r.signal}` : 'did not start'
  return `exit ${r.exitCode}`
}

/** The last non-empty line the command wrote (stderr first), for one-line error messages. */
export function lastLine(r: Pick<CommandResult, 'stdout' | 'stderr'>): string {
  const pick = (t: string) =>
    t
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1)
  return pick(r.stderr) ?? pick(r.stdout) ?? ''
}

type CommandLogger = (argv: string[]) => void
let logger: CommandLogger | undefined

/** Called with every argv before it runs (runScript sets it for --debug; it masks secrets). */
export function setCommandLogger(log: CommandLogger | undefined): void {
  logger = log
}

/** A word as a shell would need it, for showing commands to the user (never for running them). */
export function showWord(word: string): string {
  return /^[\w/.,:=@+%-]+$/.test(word) ? word : `'${word.split("'").join(`'\\''`)}'`
}

export function showCommand(argv: string[]): string {
  return argv.map(showWord).join(' ')
}

// Commands still running: a run with a hard time limit (health, watch) ends them before exiting,
// so a check given up on at the deadline cannot hold the process open.
const running = new Set<ChildProcess>()

/** Kills every command still running (SIGKILL); returns how many there were. */
export function killRunning(): number {
  const n = running.size
  for (const child of running) child.kill('SIGKILL')
  running.clear()
  return n
}

/** Runs `bin args...` without a shell. Rejects with CommandFailed unless `nothrow`. */
export function run(bin: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const argv = [bin, ...args]
  logger?.(argv)
  const started = Date.now()
  const inputPipe = opts.input !== undefined
  const stdio: SpawnOptions['stdio'] = opts.inherit
    ? ['ignore', 'inherit', 'inherit']
    : [opts.stdin ?? (inputPipe ? 'pipe' : 'ignore'), opts.stdout ?? 'pipe', 'pipe']
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let settled = false
    let timer: NodeJS.Timeout | undefined
    let killer: NodeJS.Timeout | undefined
    let drain: NodeJS.Timeout | undefined
    let tracked: ChildProcess | undefined
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(killer)
      clearTimeout(drain)
      if (tracked) running.delete(tracked)
      if (spawnError) stderr += spawnError
      const result: CommandResult = {
        argv,
        stdout,
        stderr,
        exitCode,
        signal,
        ok: exitCode === 0 && !timedOut,
        timedOut,
        durationMs: Date.now() - started,
      }
      if (result.ok || opts.nothrow) resolve(result)
      else reject(new CommandFailed(result))
    }
    let spawned: ChildProcess
    try {
      spawned = spawn(bin, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio })
    } catch (e) {
      finish(127, null, `${bin}: ${(e as Error).message}\n`)
      return
    }
    const child = spawned
    tracked = child
    running.add(child)
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
    })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    if (inputPipe) {
      child.stdin?.on('error', () => {}) // a child that exits without reading its input is no error here
      child.stdin?.end(opts.input)
    }
    const timeoutMs = durationMs(opts.timeout ?? DEFAULT_TIMEOUT)
    timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS)
      killer.unref()
    }, timeoutMs)
    child.on('error', (e: NodeJS.ErrnoException) => {
      // ENOENT: not installed (a shell would say 127); EACCES: not executable (126).
      const code = e.code === 'ENOENT' ? 127 : e.code === 'EACCES' ? 126 : null
      const why = e.code === 'ENOENT' ? 'command not found' : e.message
      finish(code, null, `${bin}: ${why}\n`)
    })
    child.on('close', (code, signal) => finish(code, signal))
    // A background process the command started may keep its output pipes open after it exits.
    child.on('exit', (code, signal) => {
      drain = setTimeout(() => {
        child.stdout?.destroy()
        child.stderr?.destroy()
        finish(code, signal)
      }, 1000)
    })
  })
}

/**
 * `run` for the few places that must stay synchronous (a lock taken before anything else runs):
 * no shell, stdin /dev/null, a timeout; never throws.
 */
export function runSync(bin: string, args: string[], opts: { timeout?: Duration } = {}): CommandResult {
  const argv = [bin, ...args]
  logger?.(argv)
  const started = Date.now()
  const r = spawnSync(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: durationMs(opts.timeout ?? '10s'),
    killSignal: 'SIGKILL',
  })
  const errno = (r.error as NodeJS.ErrnoException | undefined)?.code
  const timedOut = errno === 'ETIMEDOUT'
  const exitCode = r.status ?? (errno === 'ENOENT' ? 127 : null)
  return {
    argv,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (errno === 'ENOENT' ? `${bin}: command not found\n` : ''),
    exitCode,
    signal: r.signal,
    ok: exitCode === 0 && !timedOut,
    timedOut,
    durationMs: Date.now() - started,
  }
}
