// Shared command-line plumbing for every step script: flags with env-var fallbacks, --help,
// exit codes (0 ok, 1 runtime failure, 2 bad input), one-line errors, secret redaction.
import { parseArgs } from 'node:util'
import { CommandFailed, setCommandLogger, showCommand } from './exec.mts'

/** Bad input or configuration: exit 2, nothing has been changed. */
export class UsageError extends Error {
  readonly exitCode = 2
}

/** Something failed at run time: exit 1. `fix` says what to do about it. */
export class RuntimeFailure extends Error {
  readonly exitCode = 1
  readonly fix?: string
  constructor(message: string, fix?: string) {
    super(message)
    this.fix = fix
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets never reach the terminal: every value registered here, and whatever looks like a
// credential (secrets the toolkit never saw, in logs and in error messages), is masked in
// everything the scripts print through `say`/`warn`/the error printer and the reports.

const secrets = new Set<string>()

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 6) secrets.add(value)
}

/** `scheme://user:password@` and `https://TOKEN@`: the whole userinfo (ssh's `git@` is no secret). */
const URL_USERINFO = /\b([a-z][\w+.-]*:\/\/)(?!git@)[^\s/?#@"'<>]+@/gi
/** `Authorization: Bearer x`, `Proxy-Authorization: Basic x`, `"authorization": "x"`. */
const AUTHORIZATION =
  /\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest|negotiate)\s+)?)[^\s"',;]+/gi
/** `Cookie: a=1; b=2` and `Set-Cookie: sid=1; Path=/`: every value but the attributes'. */
const COOKIE = /\b((?:set-)?cookie["']?\s*[:=]\s*["']?)([^\r\n"']*)/gi
const COOKIE_ATTRIBUTES = /^(path|domain|expires|max-age|samesite|secure|httponly|priority|partitioned)$/i
/**
 * `KEY=value` / `"key": "value"` whose key names a secret (*SECRET*, *PASSWORD*, *TOKEN*,
 * *API_KEY*, *_KEY, *_KEYS); keys naming where a secret is kept (*_FILE, *_PATH, ...) are not.
 */
const SECRET_KEY = String.raw`[\w.-]*(?:secret|passw(?:or)?d|token|api[_-]?key)[\w.-]*|[\w.-]+_keys?`
const SECRET_PAIR = new RegExp(
  String.raw`\b(${SECRET_KEY})(["']?\s*[=:]\s*)("[^"\n]*"|'[^'\n]*'|[^\s"'&,;]+)`,
  'gi',
)
const NOT_A_SECRET_KEY = /[_.-](file|path|dir|source|type|method|stdin)$/i

function maskValue(value: string): string {
  const quote = value[0] === '"' || value[0] === "'" ? value[0] : ''
  return `${quote}***${quote}`
}

function maskCookies(prefix: string, header: string): string {
  return `${prefix}${header.replace(/([^\s=;,]+)=([^;,\s]*)/g, (pair, name: string) =>
    COOKIE_ATTRIBUTES.test(name) ? pair : `${name}=***`,
  )}`
}

/** Masks registered secrets and anything that looks like a credential. */
export function redact(text: string): string {
  let out = text
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***')
  return out
    .replace(URL_USERINFO, '$1***@')
    .replace(AUTHORIZATION, '$1***')
    .replace(COOKIE, (_m, prefix: string, header: string) => maskCookies(prefix, header))
    .replace(SECRET_PAIR, (m, key: string, sep: string, value: string) =>
      NOT_A_SECRET_KEY.test(key) || value === '***' ? m : `${key}${sep}${maskValue(value)}`,
    )
}

// Text from outside (log lines, HTTP bodies, docker's errors) may carry terminal escape
// sequences: a window title, a clear screen, a cursor move that hides the line before. They
// are dropped; other control and bidi-override characters are shown as \uXXXX (valid in JSON too).
const ESCAPE_SEQUENCE =
  /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -~])|\x9b[0-?]*[ -/]*[@-~]/g
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** `text` safe to print on a terminal: escape sequences removed, control characters made visible. */
export function printable(text: string, keepNewlines = true): string {
  const shown = text
    .replace(ESCAPE_SEQUENCE, '')
    .replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return keepNewlines ? shown : shown.replace(/\n/g, '\\n').replace(/\t/g, ' ')
}

export function say(message: string): void {
  process.stdout.write(`${redact(printable(message))}\n`)
}

export function warn(message: string): void {
  process.stderr.write(`${redact(printable(message))}\n`)
}

// ---------------------------------------------------------------------------------------------

export interface FlagSpec {
  type: 'string' | 'boolean'
  /** Environment variable read when the flag is not given. */
  env?: string
  default?: string | boolean
  help: string
  short?: string
  multiple?: boolean
  /**
   * A file or directory path. Refused when it holds a line break or `$`: such paths cannot be
   * written safely into the unit, plist, crontab and config files that name them.
   */
  path?: boolean
}

export type FlagSpecs = Record<string, FlagSpec>

/** A boolean is always set; a string flag with a default is a string; one without may be missing. */
type FlagValue<F extends FlagSpec> = F['type'] extends 'boolean'
  ? boolean
  : F['multiple'] extends true
    ? string[]
    : F extends { default: string }
      ? string
      : string | undefined

export type Flags<S extends FlagSpecs> = { [K in keyof S]: FlagValue<S[K]> } & {
  help: boolean
  debug: boolean
  _: string[]
}

const commonFlags: FlagSpecs = {
  help: { type: 'boolean', short: 'h', help: 'show this help and exit' },
  debug: { type: 'boolean', env: 'DEBUG_HOMELAB', help: 'print stack traces and the commands run' },
}

export interface ScriptSpec<S extends FlagSpecs> {
  /** How the user runs it, e.g. `npx tsx scripts/up.mts`. */
  usage: string
  summary: string
  flags: S
  /** Extra paragraphs after the flag list. */
  notes?: string
  positionals?: boolean
}

/** A step script's spec, its flags' types kept exact (so `flags[name]` is typed without casts). */
export function defineScript<const S extends FlagSpecs>(spec: ScriptSpec<S>): ScriptSpec<S> {
  return spec
}

export function helpText<S extends FlagSpecs>(spec: ScriptSpec<S>): string {
  const all = { ...spec.flags, ...commonFlags }
  const rows = Object.entries(all).map(([name, f]) => {
    const left = `  --${name}${f.type === 'string' ? ' VALUE' : ''}`
    const extras = [
      f.env ? `env ${f.env}` : '',
      f.default !== undefined && f.default !== false ? `default ${f.default}` : '',
    ]
      .filter(Boolean)
      .join(', ')
    return `${left.padEnd(30)} ${f.help}${extras ? ` (${extras})` : ''}`
  })
  return [
    `Usage: ${spec.usage}`,
    '',
    spec.summary,
    '',
    'Options:',
    ...rows,
    spec.notes ? `\n${spec.notes}` : '',
  ]
    .join('\n')
    .trimEnd()
}

function envBoolean(name: string, raw: string): boolean {
  if (/^(1|true|yes|on)$/i.test(raw)) return true
  if (/^(0|false|no|off|)$/i.test(raw)) return false
  throw new UsageError(`${name}=${raw} is not a boolean: use 1/0, true/false or yes/no`)
}

/** Parses argv strictly (unknown flags are a UsageError), then fills gaps from the environment. */
export function parseFlags<S extends FlagSpecs>(
  spec: ScriptSpec<S>,
  argv: string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): Flags<S> {
  const all = { ...spec.flags, ...commonFlags }
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {}
  for (const [name, f] of Object.entries(all))
    options[name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split(/\.\s|\n/)[0]} (see --help)`)
  }
  if (parsed.positionals.length > 0 && !spec.positionals && !parsed.values.help) {
    throw new UsageError(`unexpected argument '${parsed.positionals[0]}' (see --help)`)
  }
  const out: Record<string, unknown> = { _: parsed.positionals }
  for (const [name, f] of Object.entries(all)) {
    let v: unknown = parsed.values[name]
    if (v === undefined && f.env && env[f.env] !== undefined) {
      const raw = env[f.env] as string
      v = f.type === 'boolean' ? envBoolean(f.env, raw) : f.multiple ? raw.split(',').filter(Boolean) : raw
    }
    if (v === undefined) v = f.default ?? (f.type === 'boolean' ? false : f.multiple ? [] : undefined)
    if (f.path) checkPaths(parsed.values[name] !== undefined ? `--${name}` : (f.env ?? `--${name}`), v)
    out[name] = v
  }
  return out as Flags<S>
}

/** A path flag's value(s): no line break, no NUL, no `$` (bad input, before anything is written). */
function checkPaths(name: string, value: unknown): void {
  for (const p of Array.isArray(value) ? value : [value]) {
    if (typeof p !== 'string' || !/[\n\r\0$]/.test(p)) continue
    throw new UsageError(
      `${name}=${JSON.stringify(p)} holds a line break or '$', which the files that name this path cannot hold safely: use another path`,
    )
  }
}

function describe(err: unknown, debug: boolean): { line: string; code: number } {
  if (err instanceof UsageError) return { line: err.message, code: 2 }
  if (err instanceof RuntimeFailure)
    return { line: err.fix ? `${err.message}; ${err.fix}` : err.message, code: 1 }
  if (err instanceof CommandFailed) return { line: err.message, code: 1 }
  const e = err as Error
  return { line: debug ? String(e?.stack ?? e) : String(e?.message ?? e), code: 1 }
}

/** How a script reports a failure other than on stderr (health and watch: an UNKNOWN report). */
export type FailureReporter = (failure: { line: string; code: number; argv: string[] }) => number | undefined

export interface RunScriptOptions {
  /** Prints the failure its own way and returns the exit code; undefined: the usual stderr line. */
  onFailure?: FailureReporter
}

/** `$ docker compose ...` for --debug: the argv as a shell would need it, secrets masked. */
export function commandLogLine(argv: string[]): string {
  return redact(printable(`$ ${showCommand(argv)}`, false))
}

/**
 * Runs a step script: parses flags, prints help, runs `main`, and turns any error (thrown, or
 * escaping later as an uncaught exception) into one redacted line on stderr (stack trace only
 * with --debug) and the right exit code.
 */
export async function runScript<S extends FlagSpecs>(
  name: string,
  spec: ScriptSpec<S>,
  main: (flags: Flags<S>) => Promise<number | undefined>,
  options: RunScriptOptions = {},
): Promise<void> {
  let debug = process.argv.includes('--debug')
  const fail = (err: unknown) => {
    const { line, code } = describe(err, debug)
    const argv = process.argv.slice(2)
    const reported = options.onFailure?.({ line: redact(line), code, argv })
    if (reported === undefined) warn(`${name}: error: ${line}`)
    if (debug && err instanceof Error && !(err instanceof CommandFailed)) warn(redact(String(err.stack)))
    process.exitCode = reported ?? code
  }
  const crash = (err: unknown) => {
    fail(err)
    process.exit()
  }
  process.on('uncaughtException', crash)
  process.on('unhandledRejection', crash)
  try {
    const flags = parseFlags(spec)
    debug = flags.debug
    if (flags.help) {
      say(helpText(spec))
      process.exitCode = 0
      return
    }
    if (debug) setCommandLogger((argv) => process.stderr.write(`${commandLogLine(argv)}\n`))
    const code = await main(flags)
    process.exitCode = typeof code === 'number' ? code : 0
  } catch (err) {
    fail(err)
  }
}

/** Asks yes/no on a TTY; without a TTY the answer is `--yes` or a UsageError. */
export async function confirm(question: string, yes: boolean, what = 'this'): Promise<boolean> {
  if (yes) return true
  if (!process.stdin.isTTY)
    throw new UsageError(`refusing to ${what} without a terminal to confirm on: pass --yes`)
  const { createInterface } = await import('node:readline/promises')
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    const answer = await rl.question(`${question} [y/N] `)
    return /^y(es)?$/i.test(answer.trim())
  } finally {
    rl.close()
  }
}

/** The longest wait a Node timer can hold (2^31-1 ms, 24.8 days): longer ones fire at once. */
export const MAX_DURATION_MS = 2 ** 31 - 1

/** Why `raw` is not a usable duration, or undefined when it is one. */
export function durationProblem(raw: string): string | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim())
  if (!m) return 'is not a duration: use e.g. 90s, 20m or 1h'
  const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!
  if (ms <= 0) return 'must be greater than zero'
  if (ms > MAX_DURATION_MS) return 'is longer than a timer can wait: at most 596h (24 days)'
  return undefined
}

/** Parses a duration such as `20m`, `90s`, `1500ms`, `2h` or a bare number of seconds into ms. */
export function parseDuration(raw: string, name: string): number {
  const problem = durationProblem(raw)
  if (problem) throw new UsageError(`${name}=${raw} ${problem}`)
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim())!
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!
}
