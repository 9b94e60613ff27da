// Restores a backup taken by scripts/backup.mts: checks the manifest (every SHA-256) and the
// secrets' fingerprints, stops everything that writes to the database, pg_restore's the dump,
// and brings the stack back with the ordered start (web's migrations first), waiting for health.
import path from 'node:path'
import {
  confirm,
  defineScript,
  parseDuration,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { compose, stackServices } from '../lib/core/docker.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { formatElapsed } from '../lib/core/health.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { secretsDifferingFrom } from '../lib/core/secrets.mts'
import {
  backupSettings,
  displayPath,
  PG_DUMP_FILE,
  readManifest,
  resolveBackup,
  verifyBackup,
} from '../lib/ops/backup.mts'
import { restorePostgres, waitForDb } from '../lib/ops/postgres.mts'
import { describeStuckServices } from '../lib/stack/readiness.mts'
import { describeStartFailure, SETTLE_FLAG, stackLockDir, startStack } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/restore.mts [--from <timestamp|dir>] [--yes]',
  summary:
    "Restores PostgreSQL from a backup (default: the newest in BACKUP_DIR) after checking its manifest; stops every service but db first, then starts the stack in order and waits for /_health. The backup's .env is not copied over yours.",
  flags: {
    settle: SETTLE_FLAG,
    from: {
      type: 'string',
      path: true,
      help: 'backup folder name (e.g. 20261125T163411Z) or path; default the newest',
    },
    yes: {
      type: 'boolean',
      short: 'y',
      help: 'do not ask for confirmation (needed without a terminal)',
    },
    'accept-different-secrets': {
      type: 'boolean',
      help: 'restore although the backup was taken with other POSTHOG_SECRET / ENCRYPTION_SALT_KEYS values',
    },
    timeout: {
      type: 'string',
      help: 'how long to wait for health after the restore, e.g. 20m (default HEALTH_TIMEOUT)',
    },
    'env-file': ENV_FILE_FLAG,
  },
  notes:
    'Everything written to PostHog since the backup is lost. ClickHouse (events) is not restored by this script; see docs/operations.md, "ClickHouse backups".',
})

await runScript('restore', spec, async (flags) => {
  const cfg = loadConfig({ envFile: flags['env-file'] })
  // Parsed now: a bad value found after pg_restore would leave the stack stopped.
  const healthTimeoutMs = flags.timeout ? parseDuration(flags.timeout, '--timeout') : cfg.healthTimeoutMs
  const settleMs = parseDuration(flags.settle, '--settle')
  const { backupDir } = backupSettings(cfg)
  const dir = resolveBackup(backupDir, flags.from)
  const problems = await verifyBackup(dir)
  if (problems.length)
    throw new RuntimeFailure(
      `backup ${displayPath(dir)} is damaged: ${problems.join('; ')}`,
      'pick another one with --from (nothing was changed)',
    )
  const manifest = readManifest(dir)!
  const different = secretsDifferingFrom(manifest.secretFingerprints, cfg)
  if (different.length && !flags['accept-different-secrets'])
    throw new UsageError(
      `backup ${path.basename(dir)} was taken with a different ${different.join(' and ')}; data restored under the current values would be unreadable. ` +
        `Put the backup's values (in ${displayPath(path.join(dir, '.env'))}) into ${cfg.envFile}, or pass --accept-different-secrets`,
    )
  say(
    `backup ${path.basename(dir)}: PostHog ${manifest.posthogTag}, taken ${manifest.createdAt}, manifest verified`,
  )
  if (manifest.posthogTag !== cfg.appTag)
    warn(
      `note: the backup is from PostHog ${manifest.posthogTag}, this stack runs ${cfg.appTag}; web migrates the restored schema forward when it starts`,
    )
  const ok = await confirm(
    `Replace the current PostHog database with backup ${path.basename(dir)}? Everything written since then is lost.`,
    flags.yes,
    'restore over the current database',
  )
  if (!ok) {
    say('restore cancelled; nothing was changed')
    return 1
  }

  const release = acquireLock(stackLockDir(cfg))
  try {
    const services = await stackServices(cfg.stackDir)
    const writers = services.expected.filter((s) => s !== 'db')
    say(`stopping everything that writes to the database (${writers.length} services)`)
    if (writers.length) await compose(cfg.stackDir, ['stop', ...writers], { timeout: '10m' })
    await compose(cfg.stackDir, ['up', '-d', 'db'], { timeout: '10m' })
    await waitForDb(cfg.stackDir)
    say(`restoring PostgreSQL from ${PG_DUMP_FILE} (pg_restore --clean --if-exists) ...`)
    await restorePostgres(cfg.stackDir, path.join(dir, PG_DUMP_FILE))
    say('database restored; starting the stack in order')
    const result = await startStack(cfg, {
      services,
      log: say,
      healthTimeoutMs,
      settleMs,
    })
    if (!result.ok) {
      for (const line of await describeStuckServices(cfg, result.expected, services.oneShot)) warn(line)
      throw new RuntimeFailure(
        `the database is restored but PostHog is not healthy: ${describeStartFailure(result)}`,
        "see the services listed above, then run 'npx tsx scripts/up.mts'",
      )
    }
    say(`restored backup ${path.basename(dir)}; PostHog is healthy (${formatElapsed(result.elapsedMs)})`)
    return 0
  } finally {
    release()
  }
})
