// up: from a fresh checkout (or any later state) to a healthy PostHog on 127.0.0.1:PORT.
// Order: validate .env (pure) -> pre-flight (touches nothing) -> lock -> create .env / generate
// secrets -> secret guard -> prepare -> ordered start -> health -> record secret fingerprints.
import path from 'node:path'
import { type Flags, parseDuration, RuntimeFailure, runScript, say, UsageError, warn } from '../lib/cli.mts'
import { analyse, formatFindings } from '../lib/doctor.mts'
import {
  assertSecretsUnchanged,
  type Config,
  ENV_SPEC,
  ensureEnvFile,
  envErrors,
  envFilePath,
  fingerprintFile,
  GUARDED_SECRETS,
  isPlaceholder,
  list,
  loadConfig,
  mergeEnv,
  parseEnvText,
  readEnvFile,
  recordSecretFingerprints,
} from '../lib/env.mts'
import { readIfExists } from '../lib/fsutil.mts'
import { describeProbe, formatElapsed, healthUrl } from '../lib/health.mts'
import { acquireLock } from '../lib/lock.mts'
import {
  DEFAULT_MIN_FREE_DISK,
  failedChecks,
  formatPreflight,
  type PreflightInput,
  runPreflight,
} from '../lib/preflight.mts'
import { prepareStack } from '../lib/prepare.mts'
import { describeStuckServices, type StartResult, stackLockDir, startStack } from '../lib/startup.mts'

const spec = {
  usage: 'npx tsx scripts/up.mts [options]',
  summary:
    'Checks Docker, creates .env when missing, prepares STACK_DIR, starts PostHog in order (data stores, web ' +
    'alone until its migrations are done, then everything) and waits until /_health answers ok.',
  flags: {
    'accept-new-secrets': {
      type: 'boolean' as const,
      env: 'ACCEPT_NEW_SECRETS',
      help: 'start although POSTHOG_SECRET / ENCRYPTION_SALT_KEYS differ from the first healthy start',
    },
    'no-geoip': { type: 'boolean' as const, env: 'HOMELAB_NO_GEOIP', help: 'skip the GeoLite2 download' },
    timeout: {
      type: 'string' as const,
      help: 'how long to wait for health, e.g. 20m (default: HEALTH_TIMEOUT from .env, else 20m)',
    },
    'env-file': {
      type: 'string' as const,
      path: true,
      env: 'HOMELAB_ENV_FILE',
      help: 'the configuration file',
      default: '.env',
    },
    yes: { type: 'boolean' as const, help: 'never ask (up asks nothing today; accepted for symmetry)' },
    'retry-backoff': {
      type: 'string' as const,
      env: 'HOMELAB_RETRY_BACKOFF',
      help: 'wait before retrying a failed docker compose up (n-th retry waits n times this)',
      default: '5s',
    },
    'min-free-disk': {
      type: 'string' as const,
      env: 'HOMELAB_MIN_FREE_DISK_GB',
      help: 'free GB needed on STACK_DIR (default 15 before the first healthy start, 5 after)',
    },
  },
  notes:
    'Exit codes: 0 healthy, 1 a pre-flight check or the start failed (each line says what to do), 2 bad ' +
    'input (.env, flags, changed secrets).',
}

/** What the configuration will be, read without writing anything (secrets may still be placeholders). */
function previewConfig(envFile: string, root: string) {
  const text = readEnvFile(envFile) ?? readIfExists(path.join(root, '.env.example'))
  if (text === undefined)
    throw new RuntimeFailure(`neither ${envFile} nor .env.example exists`, 'restore .env.example from git')
  const raw = mergeEnv(parseEnvText(text))
  const toGenerate = GUARDED_SECRETS.filter((k) => isPlaceholder(raw[k]))
  const errors = envErrors(
    raw,
    Object.keys(ENV_SPEC).filter((k) => !(toGenerate as string[]).includes(k)),
  )
  if (errors.length) throw new UsageError(`invalid ${envFile}: ${errors[0]}`)
  const memoryLimits = Object.fromEntries(
    list(raw.MEMORY_LIMITS!).map((i) => i.split('=').map((s) => s.trim())),
  )
  const input: PreflightInput = {
    stackDir: path.resolve(root, raw.STACK_DIR!),
    disabledServices: list(raw.DISABLED_SERVICES!),
    memoryLimits,
  }
  return { input, toGenerate }
}

function gigabytes(raw: string): number {
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new UsageError(`--min-free-disk=${raw} must be a number of GB`)
  return Number(raw) * 1024 ** 3
}

async function preflight(input: PreflightInput, minFreeDisk: string | undefined, firstStart: boolean) {
  const minFreeDiskBytes = minFreeDisk
    ? gigabytes(minFreeDisk)
    : firstStart
      ? DEFAULT_MIN_FREE_DISK
      : 5 * 1024 ** 3
  const failed = failedChecks(await runPreflight(input, { minFreeDiskBytes }))
  if (failed.length === 0) return true
  for (const line of formatPreflight(failed)) warn(`up: pre-flight: ${line}`)
  return false
}

async function reportTimeout(
  cfg: Config,
  result: Extract<StartResult, { ok: false }>,
  ctx: { startedAt: Date; enabledServices: string[] },
): Promise<void> {
  const what =
    result.phase === 'migrations' ? 'web did not finish its migrations' : 'PostHog did not become healthy'
  warn(`up: ${what} within ${formatElapsed(result.timeoutMs)} (last /_health: ${describeProbe(result.last)})`)
  for (const line of await describeStuckServices(cfg, result.expected)) warn(line)
  // Likely causes and fixes from the doctor (helper C's catalog); pre-flight already passed.
  try {
    // Services the ordered start has not reached yet are not problems.
    const notStarted = new Set(ctx.enabledServices.filter((s) => !result.expected.includes(s)))
    const findings = (await analyse(cfg, { preflight: false, since: ctx.startedAt.toISOString() })).filter(
      (f) => !notStarted.has(f.service),
    )
    if (findings.length) for (const line of formatFindings(findings).split('\n')) warn(line)
  } catch (e) {
    warn(`(the diagnosis failed too: ${(e as Error).message.split('\n')[0]})`)
  }
  warn('Look again later with: npx tsx scripts/doctor.mts')
}

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const root = process.cwd()
  const envFile = envFilePath({ root, envFile: flags['env-file'] })
  const flagTimeoutMs = flags.timeout ? parseDuration(flags.timeout, '--timeout') : undefined
  const retryBackoffMs = parseDuration(flags['retry-backoff'] ?? '5s', '--retry-backoff')
  const accept = flags['accept-new-secrets']

  // 1. Pure: validate what is there (exit 2 before anything is written).
  const preview = previewConfig(envFile, root)
  const fingerprints = readIfExists(fingerprintFile(preview.input.stackDir))
  if (fingerprints !== undefined && preview.toGenerate.length && !accept)
    throw new UsageError(
      `${preview.toGenerate.join(' and ')} ${preview.toGenerate.length > 1 ? 'are' : 'is'} empty in ${envFile}, but the stack in ${preview.input.stackDir} was started with secrets; ` +
        'new ones would make its data unreadable. Restore your .env (or its backup), or pass --accept-new-secrets',
    )

  // 2. Pre-flight: nothing has been touched yet.
  if (!(await preflight(preview.input, flags['min-free-disk'], fingerprints === undefined))) return 1

  // 3. From here on things change: one run at a time.
  const release = acquireLock(stackLockDir(preview.input))
  try {
    const ensured = ensureEnvFile({ root, envFile })
    if (ensured.created)
      say(
        `created ${path.relative(root, envFile) || envFile} (mode 0600) with new secrets and DOMAIN=localhost: keep it safe`,
      )
    else if (ensured.generated.length) say(`generated ${ensured.generated.join(' and ')} in ${envFile}`)
    const cfg = loadConfig({ root, envFile })
    assertSecretsUnchanged(cfg, accept)

    const startedAt = new Date()
    const prepared = await prepareStack(cfg, { geoip: !flags['no-geoip'], log: say })
    for (const notice of prepared.notices) say(notice)

    const result = await startStack(cfg, {
      enabledServices: prepared.enabledServices,
      log: say,
      healthTimeoutMs: flagTimeoutMs ?? cfg.healthTimeoutMs,
      retryBackoffMs,
    })
    if (!result.ok) {
      await reportTimeout(cfg, result, { startedAt, enabledServices: prepared.enabledServices })
      return 1
    }
    recordSecretFingerprints(cfg)
    say(`PostHog is healthy: http://127.0.0.1:${cfg.proxyPort} (health: ${healthUrl(cfg.proxyPort)})`)
    if (cfg.domain === 'localhost')
      say('Local use only. To go public: set DOMAIN in .env, then follow "Go public" in README.md')
    else say(`Once the tunnel and nginx are set up (README "Go public"), it answers on https://${cfg.domain}`)
    return 0
  } finally {
    release()
  }
}

await runScript('up', spec, main)
