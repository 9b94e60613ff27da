import path from 'node:path'
import dotenv from 'dotenv'
import { durationProblem, type FlagSpec, parseDuration, registerSecret, UsageError } from './cli.mts'
import { FEATURES, unknownFeatures } from './feature-catalog.mts'
import { readIfExists } from './fs.mts'
import { checkStackDir, resolveStackDir } from './stack-dir.mts'

/** frps reads the token from a file (`auth.tokenSource`) only from this release on. */
export const FRP_MIN_VERSION = '0.64.0'

function versionParts(v: string): number[] {
  return v.split('.').map(Number)
}

/** Why `version` cannot be used (not x.y.z, or older than FRP_MIN_VERSION), or undefined. */
export function frpVersionProblem(version: string): string | undefined {
  if (!/^\d+\.\d+\.\d+$/.test(version)) return 'must be a version such as 0.70.1'
  const [a, b] = [versionParts(version), versionParts(FRP_MIN_VERSION)]
  const diff = a.map((n, i) => n - b[i]!).find((d) => d !== 0) ?? 0
  return diff < 0
    ? `must be ${FRP_MIN_VERSION} or later (frps reads the token from a file, auth.tokenSource, since ${FRP_MIN_VERSION})`
    : undefined
}

/**
 * Why `token` cannot be the tunnel token, or undefined. frp runs every config file through Go's
 * template engine before parsing it, so `{{` in frpc.toml starts a template action and breaks the file.
 */
export function frpTokenProblem(token: string): string | undefined {
  if (token.length < 32 || /\s/.test(token)) return 'must be at least 32 characters without spaces'
  if (token.includes('{{'))
    return "must not contain '{{' (frp reads its config files as Go templates, so frpc.toml would break)"
  return undefined
}

type Validator = (value: string) => string | undefined

export interface EnvKey {
  default: string
  validate?: Validator
  secret?: boolean
}

const HOSTNAME_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i
const SERVICE_NAME = /^[a-z0-9][a-z0-9_.-]*$/
const MEMORY = /^(\d+(?:\.\d+)?)\s*([kmgt])?(i?b)?$/i

export function isHostname(v: string): boolean {
  if (v === 'localhost') return true
  if (v.length > 253 || !v.includes('.')) return false
  return v.split('.').every((l) => HOSTNAME_LABEL.test(l)) && !/^\d+$/.test(v.split('.').at(-1) ?? '')
}

/** git check-ref-format rules, plus: never starts with '-', so git cannot read it as an option. */
export function isGitRefName(v: string): boolean {
  if (!v || v.startsWith('-') || v === '@' || v.endsWith('/') || v.endsWith('.') || v.endsWith('.lock'))
    return false
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(v) || v.includes('..') || v.includes('@{') || v.includes('//'))
    return false
  return v.split('/').every((part) => part.length > 0 && !part.startsWith('.') && !part.endsWith('.lock'))
}

export function parseMemory(v: string): number {
  const m = MEMORY.exec(v.trim())
  if (!m) throw new UsageError(`'${v}' is not a memory size: use e.g. 512m or 1.5g`)
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()]!
  return Math.round(Number(m[1]) * mult)
}

const port: Validator = (v) =>
  /^\d+$/.test(v) && +v >= 1 && +v <= 65535 ? undefined : 'must be a port number 1..65535'
const positiveInt: Validator = (v) => (/^[1-9]\d*$/.test(v) ? undefined : 'must be a whole number above 0')
const duration: Validator = (v) => durationProblem(v)
const optional =
  (inner: Validator): Validator =>
  (v) =>
    v === '' ? undefined : inner(v)
const url: Validator = (v) =>
  /^(https?|file|ssh|git):\/\/\S+$|^[\w.-]+@[\w.-]+:\S+$|^\/\S*$/.test(v) ? undefined : 'must be a URL'
const httpUrl: Validator = (v) => (/^https?:\/\/\S+$/.test(v) ? undefined : 'must be an http(s) URL')

const serviceList: Validator = (v) => {
  const bad = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '' && !SERVICE_NAME.test(s))
  if (/,\s*,/.test(v) || bad.length)
    return `must be service names separated by commas${bad.length ? ` ('${bad[0]}' is not one)` : ''}`
  return undefined
}
const featureList: Validator = (v) => {
  const unknown = unknownFeatures(list(v))
  return unknown.length
    ? `must be features separated by commas, from: ${Object.keys(FEATURES).join(', ')} ('${unknown[0]}' is not one)`
    : undefined
}
const memoryList: Validator = (v) => {
  for (const item of v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [svc, size, ...rest] = item.split('=')
    if (!svc || !size || rest.length || !SERVICE_NAME.test(svc.trim()) || !MEMORY.test(size.trim()))
      return `must be service=size pairs separated by commas, e.g. clickhouse=2g,web=1.5g ('${item}' is not one)`
  }
  return undefined
}

export const PLACEHOLDER = /^replace-with-/i

export const ENV_SPEC: Record<string, EnvKey> = {
  DOMAIN: {
    default: 'localhost',
    validate: (v) => (isHostname(v) ? undefined : 'must be a hostname such as ph.example.com, or localhost'),
  },
  POSTHOG_SECRET: {
    default: '',
    secret: true,
    validate: (v) =>
      v.length >= 50 && !/\s/.test(v)
        ? undefined
        : 'must be at least 50 characters without spaces (leave it empty to generate one)',
  },
  ENCRYPTION_SALT_KEYS: {
    default: '',
    secret: true,
    validate: (v) =>
      /^[A-Za-z0-9_-]{32}$/.test(v)
        ? undefined
        : 'must be exactly 32 characters of A-Z a-z 0-9 _ - (leave it empty to generate one)',
  },
  POSTHOG_PROXY_HTTP_PORT: { default: '18000', validate: port },
  POSTHOG_APP_TAG: {
    default: 'latest',
    validate: (v) => (isGitRefName(v) ? undefined : 'must be a tag, branch, latest or a 40-hex commit'),
  },
  POSTHOG_NODE_TAG: {
    default: 'latest',
    validate: (v) => (/^[\w][\w.-]{0,127}$/.test(v) ? undefined : 'must be a Docker image tag'),
  },
  REGISTRY_URL: {
    default: 'posthog/posthog',
    validate: (v) =>
      /^[a-z0-9][a-z0-9._/:-]*[a-z0-9]$/.test(v)
        ? undefined
        : 'must be an image repository such as posthog/posthog',
  },
  POSTHOG_REPO_URL: {
    default: 'https://github.com/PostHog/posthog.git',
    // git reads an argument starting with '-' as an option (e.g. --upload-pack=<command>).
    validate: (v) => (v.startsWith('-') ? 'must not start with - (git would read it as an option)' : url(v)),
  },
  STACK_DIR: {
    default: 'stack',
    validate: (v) => (v.trim() && !v.includes('\n') ? undefined : 'must be a directory path'),
  },
  DISABLED_FEATURES: { default: 'error-tracking,live-events,temporal-ui', validate: featureList },
  DISABLED_SERVICES: { default: '', validate: serviceList },
  MEMORY_LIMITS: { default: 'clickhouse=2g,web=1.5g,worker=1.5g,elasticsearch=512m', validate: memoryList },
  POSTHOG_WORKER_WEB_CONCURRENCY: { default: '1', validate: positiveInt },
  POSTHOG_CELERY_MAX_TASKS_PER_CHILD: { default: '100', validate: positiveInt },
  POSTHOG_CELERY_MAX_MEMORY_PER_CHILD: { default: '400000', validate: positiveInt },
  HEALTH_TIMEOUT: { default: '20m', validate: duration },
  HEALTH_WEBHOOK_URL: { default: '', validate: optional(httpUrl), secret: true },
  HEALTH_WEBHOOK_FORMAT: {
    default: 'json',
    validate: (v) => (v === 'json' || v === 'text' ? undefined : 'must be json or text'),
  },
  HEALTH_REMIND_HOURS: { default: '6', validate: positiveInt },
  FRP_VERSION: { default: '0.70.1', validate: frpVersionProblem },
  FRP_RELEASE_BASE_URL: { default: 'https://github.com/fatedier/frp/releases/download', validate: url },
  FRP_SERVER_ADDR: {
    default: '',
    validate: optional((v) => (/^[\w.:-]+$/.test(v) ? undefined : 'must be an IP address or hostname')),
  },
  FRP_SERVER_PORT: { default: '7000', validate: port },
  FRP_TOKEN: {
    default: '',
    secret: true,
    validate: optional((v) => {
      const problem = frpTokenProblem(v)
      return problem && `${problem} (leave it empty to generate one)`
    }),
  },
  FRP_REMOTE_PORT: { default: '12080', validate: port },
  CERTBOT_EMAIL: {
    default: '',
    validate: optional((v) =>
      /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) ? undefined : 'must be an e-mail address',
    ),
  },
  BACKUP_DIR: { default: 'backups', validate: (v) => (v.trim() ? undefined : 'must be a directory path') },
  BACKUP_KEEP: { default: '7', validate: positiveInt },
}

export interface Config {
  root: string
  envFile: string
  /** Every key of ENV_SPEC, after defaults, `.env` and the process environment. */
  raw: Record<string, string>
  domain: string
  posthogSecret: string
  encryptionSaltKeys: string
  proxyPort: number
  appTag: string
  nodeTag: string
  registryUrl: string
  repoUrl: string
  stackDir: string
  disabledFeatures: string[]
  disabledServices: string[]
  memoryLimits: Record<string, string>
  workerConcurrency: string
  celeryMaxTasksPerChild: string
  celeryMaxMemoryPerChild: string
  healthTimeoutMs: number
}

export const list = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

export function parseEnvText(text: string): Record<string, string> {
  return dotenv.parse(text)
}

/**
 * Merges defaults, the `.env` file and the process environment (which wins). An empty variable
 * never stands in for a secret (`POSTHOG_SECRET= npx tsx ...` is an accident, not a wish for a
 * new secret that would make the data unreadable).
 */
export function mergeEnv(
  fileValues: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const raw: Record<string, string> = {}
  for (const [key, spec] of Object.entries(ENV_SPEC)) {
    const fromEnv = spec.secret && env[key] === '' ? undefined : env[key]
    raw[key] = fromEnv ?? fileValues[key] ?? spec.default
  }
  for (const [key, value] of Object.entries(fileValues)) if (!(key in raw)) raw[key] = value
  return raw
}

/** Every problem with the values, one message per key, naming the key and the fix. */
export function envErrors(raw: Record<string, string>, keys = Object.keys(ENV_SPEC)): string[] {
  const errors: string[] = []
  for (const key of keys) {
    const spec = ENV_SPEC[key]
    const value = raw[key] ?? ''
    const problem = spec?.validate?.(value)
    if (problem) errors.push(`${key} ${problem}`)
  }
  return errors
}

/**
 * The credential in an http(s) URL such as `https://user:TOKEN@host/repo` (the password) or
 * `https://TOKEN@host/repo` (a token given as the user name), so it is masked wherever the URL
 * is printed (prepare logs where it fetches from; git's errors may quote it).
 */
export function urlCredential(url: string): string | undefined {
  const userinfo = /^https?:\/\/([^/@]+)@/i.exec(url)?.[1]
  if (!userinfo) return undefined
  const colon = userinfo.indexOf(':')
  return colon >= 0 ? userinfo.slice(colon + 1) : userinfo
}

export function toConfig(root: string, envFile: string, raw: Record<string, string>): Config {
  const errors = envErrors(raw)
  if (errors.length) {
    const more =
      errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : ''
    throw new UsageError(`invalid ${path.relative(process.cwd(), envFile) || envFile}: ${errors[0]}${more}`)
  }
  for (const [key, spec] of Object.entries(ENV_SPEC)) if (spec.secret) registerSecret(raw[key])
  registerSecret(urlCredential(raw.POSTHOG_REPO_URL ?? ''))
  const memoryLimits: Record<string, string> = {}
  for (const item of list(raw.MEMORY_LIMITS!)) {
    const [svc, size] = item.split('=').map((s) => s.trim())
    memoryLimits[svc!] = size!
  }
  return {
    root,
    envFile,
    raw,
    domain: raw.DOMAIN!,
    posthogSecret: raw.POSTHOG_SECRET!,
    encryptionSaltKeys: raw.ENCRYPTION_SALT_KEYS!,
    proxyPort: Number(raw.POSTHOG_PROXY_HTTP_PORT),
    appTag: raw.POSTHOG_APP_TAG!,
    nodeTag: raw.POSTHOG_NODE_TAG!,
    registryUrl: raw.REGISTRY_URL!,
    repoUrl: raw.POSTHOG_REPO_URL!,
    stackDir: resolveStackDir(root, raw.STACK_DIR!),
    disabledFeatures: list(raw.DISABLED_FEATURES!),
    disabledServices: list(raw.DISABLED_SERVICES!),
    memoryLimits,
    workerConcurrency: raw.POSTHOG_WORKER_WEB_CONCURRENCY!,
    celeryMaxTasksPerChild: raw.POSTHOG_CELERY_MAX_TASKS_PER_CHILD!,
    celeryMaxMemoryPerChild: raw.POSTHOG_CELERY_MAX_MEMORY_PER_CHILD!,
    healthTimeoutMs: parseDuration(raw.HEALTH_TIMEOUT!, 'HEALTH_TIMEOUT'),
  }
}

export interface LoadOptions {
  root?: string
  /** Path of the env file, default `<root>/.env` (flag --env-file / env HOMELAB_ENV_FILE). */
  envFile?: string
  env?: NodeJS.ProcessEnv
}

export function envFilePath(opts: LoadOptions = {}): string {
  const root = path.resolve(opts.root ?? process.cwd())
  return path.resolve(root, opts.envFile ?? (opts.env ?? process.env).HOMELAB_ENV_FILE ?? '.env')
}

/** The `--env-file` flag every step at home shares. */
export const ENV_FILE_FLAG = {
  type: 'string',
  env: 'HOMELAB_ENV_FILE',
  path: true,
  help: 'configuration file',
  default: '.env',
} as const satisfies FlagSpec

/**
 * The env file's text, or undefined when there is none. One that cannot be read (a directory, no
 * permission) is bad input with one line saying what to do, not a raw EISDIR/EACCES.
 */
export function readEnvFile(envFile: string): string | undefined {
  try {
    return readIfExists(envFile)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error'
    if (code === 'EISDIR')
      throw new UsageError(
        `${envFile} is a directory, not a file: point --env-file (or HOMELAB_ENV_FILE) at the .env file, or move that directory away`,
      )
    if (code === 'EACCES' || code === 'EPERM')
      throw new UsageError(
        `${envFile} cannot be read by this user (${code}): make it yours (chown) with mode 600, or run as the user who owns it`,
      )
    throw new UsageError(`${envFile} cannot be read (${code}): check that it is a readable file`)
  }
}

/** Loads and validates the configuration without changing any file. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const root = path.resolve(opts.root ?? process.cwd())
  const envFile = envFilePath(opts)
  const text = readEnvFile(envFile)
  if (text === undefined)
    throw new UsageError(`no ${envFile}: run 'npx tsx scripts/up.mts' once, or copy .env.example to .env`)
  const cfg = toConfig(root, envFile, mergeEnv(parseEnvText(text), opts.env))
  checkStackDir(root, envFile, cfg.raw.STACK_DIR!)
  return cfg
}
