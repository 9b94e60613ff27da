// Writing .env in place: a value is set on its own line and every other line, comment and their
// order is kept; on the first run the file is created from .env.example and the secrets it lacks
// are generated into it.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { RuntimeFailure, registerSecret, UsageError } from './cli.mts'
import {
  ENV_SPEC,
  envErrors,
  envFilePath,
  type LoadOptions,
  mergeEnv,
  PLACEHOLDER,
  parseEnvText,
  readEnvFile,
} from './env.mts'
import { readIfExists, writeFileAtomic } from './fs.mts'
import { GUARDED_SECRETS } from './secrets.mts'
import { checkStackDir, resolveStackDir } from './stack-dir.mts'

// How dotenv reads a value (its parser, `dotenv.parse`): quotes are taken off and nothing is
// unescaped, except that inside double quotes the two characters `\n` and `\r` become a line
// break and a carriage return. A quote inside a quoted value is only possible with a backslash
// before it, which stays (`\'` reads as `\'`); a backslash just before the closing quote would
// read as such a pair. An unquoted value ends at `#` or the line's end and is trimmed. A value is
// written in the first form that reads back exactly; the few that none can hold are refused.

const PLAIN = /^[^\s#"'`$\\]*$/

/** Every `quote` in `value` has a backslash before it, and no backslash ends it. */
function fitsBetween(quote: string, value: string): boolean {
  if (value.endsWith('\\')) return false
  return [...value].every((c, i) => c !== quote || value[i - 1] === '\\')
}

/** How to write `value` after `KEY=` so that dotenv reads back exactly `value`. */
export function formatEnvValue(value: string): string {
  if (PLAIN.test(value)) return value
  const noCr = !value.includes('\r')
  if (noCr && fitsBetween("'", value)) return `'${value}'`
  if (noCr && fitsBetween('`', value)) return `\`${value}\``
  if (fitsBetween('"', value) && !/\\[nr]/.test(value))
    return `"${value.replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`
  if (!/[\r\n#]/.test(value) && value === value.trim() && !/^["'`]/.test(value)) return value
  throw new UsageError(
    `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)} cannot be written to .env so that it reads back the same (it mixes ', " and \` with a line break, # or a trailing backslash): use another value`,
  )
}

/** dotenv's own line pattern (lib/main.js LINE), with the separator captured too. */
const ASSIGNMENT =
  /(?:^|^)\s*(?:export\s+)?([\w.-]+)(\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/dgm

/**
 * Returns `text` with KEY set to `value`: the existing assignment's value is replaced in place
 * (the whole of it, also when it spans lines; `export`, spacing and a trailing comment are kept),
 * or a line is appended. When KEY is set more than once, the last assignment is edited: dotenv
 * reads the last one, and the earlier lines (perhaps a real secret) stay as the user wrote them.
 */
export function setEnvValue(text: string, key: string, value: string): string {
  const formatted = formatEnvValue(value)
  const assignments = [...text.replace(/\r\n?/g, '\n').matchAll(ASSIGNMENT)].filter((m) => m[1] === key)
  const last = assignments.at(-1)
  if (last?.indices && text.includes('\r') === false) {
    const [, , sep, val] = last.indices
    let [start, end] = val ?? [sep![1], sep![1]]
    const raw = text.slice(start, end)
    start += raw.length - raw.trimStart().length
    end -= raw.length - raw.trimEnd().length
    if (end < start) end = start
    return `${text.slice(0, start)}${formatted}${text.slice(end)}`
  }
  if (last) return setEnvValue(text.replace(/\r\n?/g, '\n'), key, value)
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${key}=${formatted}\n`
}

export function isPlaceholder(value: string | undefined): boolean {
  return value === undefined || value.trim() === '' || PLACEHOLDER.test(value.trim())
}

export const SECRET_GENERATORS: Record<string, () => string> = {
  // 56 hex characters, as `openssl rand -hex 28` and PostHog's deploy-hobby (sha224) make them.
  POSTHOG_SECRET: () => randomBytes(28).toString('hex'),
  // 32 hex characters, as `openssl rand -hex 16`.
  ENCRYPTION_SALT_KEYS: () => randomBytes(16).toString('hex'),
  FRP_TOKEN: () => randomBytes(24).toString('hex'),
}

export interface EnvPlan {
  root: string
  envFile: string
  /** The env file's text as it is, or `.env.example`'s when there is no env file yet. */
  text: string
  exists: boolean
  raw: Record<string, string>
  /** Secret keys the file holds no real value for (empty or `replace-with-...`): to be generated. */
  toGenerate: string[]
  stackDir: string
}

/**
 * What the configuration will be, read without writing anything: the env file (or
 * `.env.example` before there is one), every value but the secrets still to be generated
 * validated (UsageError), STACK_DIR checked. A secret is generated only when the file itself
 * lacks one and the environment gives none.
 */
export function planEnvFile(opts: LoadOptions & { secretKeys?: string[] } = {}): EnvPlan {
  const root = path.resolve(opts.root ?? process.cwd())
  const envFile = envFilePath(opts)
  let text = readEnvFile(envFile)
  const exists = text !== undefined
  if (text === undefined) {
    text = readIfExists(path.join(root, '.env.example'))
    if (text === undefined)
      throw new RuntimeFailure(`neither ${envFile} nor .env.example exists`, 'restore .env.example from git')
  }
  const fileValues = parseEnvText(text)
  const raw = mergeEnv(fileValues, opts.env)
  const secretKeys = opts.secretKeys ?? [...GUARDED_SECRETS]
  const toGenerate = secretKeys.filter((k) => isPlaceholder(fileValues[k]) && isPlaceholder(raw[k]))
  const errors = envErrors(
    raw,
    Object.keys(ENV_SPEC).filter((k) => !toGenerate.includes(k)),
  )
  if (errors.length) throw new UsageError(`invalid ${envFile}: ${errors[0]}`)
  checkStackDir(root, envFile, raw.STACK_DIR!)
  return { root, envFile, text, exists, raw, toGenerate, stackDir: resolveStackDir(root, raw.STACK_DIR!) }
}

export interface EnsureResult {
  created: boolean
  generated: string[]
}

/**
 * Makes sure the env file exists (copied from `.env.example` when missing) and that each key
 * in `secretKeys` holds a real secret: empty or `replace-with-...` values in the file are
 * generated and written back in place (only that line). A real secret is never replaced. The
 * file ends mode 0600; a symlinked env file is written through to its target. Validates every
 * other key first, so bad input changes nothing.
 */
export function ensureEnvFile(opts: LoadOptions & { secretKeys?: string[] } = {}): EnsureResult {
  const plan = planEnvFile(opts)
  let text = plan.text
  for (const key of plan.toGenerate) {
    const gen = SECRET_GENERATORS[key]
    if (!gen) throw new UsageError(`${key} is empty and cannot be generated: set it in ${plan.envFile}`)
    const value = gen()
    registerSecret(value)
    text = setEnvValue(text, key, value)
  }
  writeFileAtomic(plan.envFile, text, { mode: 0o600 })
  return { created: !plan.exists, generated: plan.toGenerate }
}
