// up: from a fresh checkout (or any later state) to a healthy PostHog on 127.0.0.1:PORT.
// Order: validate .env (pure) -> pre-flight (touches nothing) -> lock -> create .env / generate
// secrets -> secret guard -> prepare -> ordered start -> health -> record secret fingerprints.
import fs from 'node:fs'
import path from 'node:path'
import { defineScript, type Flags, parseDuration, runScript, say, warn } from '../lib/core/cli.mts'
import { MIN_FREE_DISK_FLAG, minFreeDiskBytes } from '../lib/core/disk.mts'
import { stackServices } from '../lib/core/docker.mts'
import { ENV_FILE_FLAG, envFilePath, loadConfig } from '../lib/core/env.mts'
import { ensureEnvFile, planEnvFile } from '../lib/core/env-file.mts'
import { healthUrl } from '../lib/core/health.mts'
import { acquireLock } from '../lib/core/lock.mts'
import {
  assertSecretsUnchanged,
  fingerprintFile,
  recordSecretFingerprints,
  refuseForeignVolumes,
  refuseNewSecretsOnStartedStack,
} from '../lib/core/secrets.mts'
import { startFailureReport } from '../lib/ops/start-report.mts'
import {
  failedChecks,
  formatPreflight,
  type PreflightInput,
  preflightInput,
  runPreflight,
} from '../lib/stack/preflight.mts'
import { NO_GEOIP_FLAG, prepareStack } from '../lib/stack/prepare.mts'
import { RETRY_BACKOFF_FLAG, SETTLE_FLAG, stackLockDir, startStack } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/up.mts [options]',
  summary:
    'Checks Docker, creates .env when missing, prepares STACK_DIR, starts PostHog in order (data stores, web ' +
    'alone until its migrations are done, then everything), waits until /_health answers ok and every ' +
    'service runs (healthy where it has a healthcheck), and checks they stay up for --settle.',
  flags: {
    'accept-new-secrets': {
      type: 'boolean',
      env: 'ACCEPT_NEW_SECRETS',
      help: 'start although POSTHOG_SECRET / ENCRYPTION_SALT_KEYS differ from the first healthy start',
    },
    'no-geoip': NO_GEOIP_FLAG,
    timeout: {
      type: 'string',
      help: 'how long to wait for health, e.g. 20m (default: HEALTH_TIMEOUT from .env, else 20m)',
    },
    'env-file': ENV_FILE_FLAG,
    yes: { type: 'boolean', help: 'never ask (up asks nothing today; accepted for symmetry)' },
    'retry-backoff': RETRY_BACKOFF_FLAG,
    settle: SETTLE_FLAG,
    'min-free-disk': MIN_FREE_DISK_FLAG,
  },
  notes:
    'Exit codes: 0 healthy, 1 a pre-flight check or the start failed (each line says what to do), 2 bad ' +
    'input (.env, flags, changed secrets).',
})

async function preflight(input: PreflightInput, minFreeDisk: string | undefined, firstStart: boolean) {
  const failed = failedChecks(
    await runPreflight(input, { minFreeDiskBytes: minFreeDiskBytes(minFreeDisk, firstStart) }),
  )
  if (failed.length === 0) return true
  for (const line of formatPreflight(failed)) warn(`up: pre-flight: ${line}`)
  return false
}

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const root = process.cwd()
  const envFile = envFilePath({ root, envFile: flags['env-file'] })
  const flagTimeoutMs = flags.timeout ? parseDuration(flags.timeout, '--timeout') : undefined
  const retryBackoffMs = parseDuration(flags['retry-backoff'], '--retry-backoff')
  const settleMs = parseDuration(flags.settle, '--settle')
  const accept = flags['accept-new-secrets']

  // 1. Validate what is there (exit 2 before anything is written).
  const plan = planEnvFile({ root, envFile })
  refuseNewSecretsOnStartedStack(plan, accept)
  const firstStart = !fs.existsSync(fingerprintFile(plan.stackDir))

  // 2. Pre-flight: nothing has been touched yet.
  if (!(await preflight(preflightInput(plan), flags['min-free-disk'], firstStart))) return 1
  await refuseForeignVolumes(plan, accept)

  // 3. From here on things change: one run at a time.
  const release = acquireLock(stackLockDir(plan))
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
    for (const line of prepared.switchedOff) say(`switched off: ${line}`)

    const services = await stackServices(cfg.stackDir)
    // From the first start on, the data is written with these secrets.
    recordSecretFingerprints(cfg)
    const result = await startStack(cfg, {
      services,
      log: say,
      healthTimeoutMs: flagTimeoutMs ?? cfg.healthTimeoutMs,
      retryBackoffMs,
      settleMs,
    })
    if (!result.ok) {
      const [why, ...details] = await startFailureReport(cfg, result, { startedAt, services })
      warn(`up: ${why}`)
      for (const line of details) warn(line)
      return 1
    }
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
