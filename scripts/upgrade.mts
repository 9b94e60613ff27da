// upgrade --to TAG: backup, prepare the target's files in a staging dir, pull (a failure changes
// nothing), switch the live files and .env's tag, stop the node/ingestion services, start web
// alone until its migrations are done, start everything, wait for health. A failure after the
// pull puts the previous files and tag back and starts the previous version. A journal makes a
// kill -9 at any point recoverable: the next run finishes the upgrade or rolls it back.
// The state machine is lib/ops/upgrade-run.mts; a new PostgreSQL major moves by lib/ops/pg-major.mts.
import {
  defineScript,
  type Flags,
  parseDuration,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { MIN_FREE_DISK_FLAG } from '../lib/core/disk.mts'
import { type Config, ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { runUpgrade, type UpgradeRequest } from '../lib/ops/upgrade-run.mts'
import { NO_GEOIP_FLAG } from '../lib/stack/prepare.mts'
import { RETRY_BACKOFF_FLAG, SETTLE_FLAG, stackLockDir } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/upgrade.mts --to TAG [--dry-run] [--force] [--postgres-major] [--clickhouse]',
  summary:
    'Upgrades PostHog to TAG: backup, new compose files, image pull, web alone until its migrations are done, ' +
    'then everything; rolls back to the current version by itself when the new one does not come up healthy.',
  flags: {
    to: {
      type: 'string',
      help: 'target PostHog version: a tag, branch, latest or a 40-hex commit (a branch: its newest commit with images)',
    },
    'dry-run': {
      type: 'boolean',
      help: 'print the plan (tags, services added/removed, images) and change nothing',
    },
    force: { type: 'boolean', help: 'upgrade although PostHog is not healthy now' },
    'postgres-major': {
      type: 'boolean',
      help: 'when the target runs a new PostgreSQL major: back up every database, keep the old volume aside, restore into the new major',
    },
    clickhouse: {
      type: 'boolean',
      env: 'BACKUP_CLICKHOUSE',
      help: 'back ClickHouse up too before upgrading (needs the /backups mount, see docs/operations.md)',
    },
    rollback: {
      type: 'boolean',
      help: 'after an interrupted upgrade: roll it back instead of finishing it',
    },
    timeout: {
      type: 'string',
      help: "how long to wait for web's migrations and for health, e.g. 20m (default HEALTH_TIMEOUT)",
    },
    'min-free-disk': MIN_FREE_DISK_FLAG,
    'retry-backoff': RETRY_BACKOFF_FLAG,
    settle: SETTLE_FLAG,
    'no-geoip': NO_GEOIP_FLAG,
    'env-file': ENV_FILE_FLAG,
  },
  notes:
    'Every upgrade appends a line to STACK_DIR/upgrades.log. If an upgrade is interrupted (crash, kill), run ' +
    'upgrade again: it finishes the upgrade, or rolls it back with --rollback.\n' +
    'A target with a new PostgreSQL major is refused (exit 2) unless --postgres-major is given; a new ClickHouse ' +
    'release line is only backed up with --clickhouse.\n' +
    'Exit codes: 0 upgraded (or plan printed), 1 failed (rolled back when possible; the message says where the ' +
    'backup is), 2 bad input.',
})

/** The flags as the upgrade's request; durations are parsed (bad input) before anything runs. */
function requestOf(flags: Flags<typeof spec.flags>, cfg: Config): UpgradeRequest {
  return {
    to: flags.to,
    dryRun: flags['dry-run'],
    force: flags.force,
    rollback: flags.rollback,
    postgresMajor: flags['postgres-major'],
    clickhouse: flags.clickhouse,
    geoip: !flags['no-geoip'],
    minFreeDisk: flags['min-free-disk'],
    timeoutMs: flags.timeout ? parseDuration(flags.timeout, '--timeout') : cfg.healthTimeoutMs,
    retryBackoffMs: parseDuration(flags['retry-backoff'], '--retry-backoff'),
    settleMs: parseDuration(flags.settle, '--settle'),
    log: say,
    warn,
  }
}

await runScript('upgrade', spec, async (flags) => {
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const request = requestOf(flags, cfg)
  if (request.dryRun && request.rollback) throw new UsageError('--dry-run and --rollback do not go together')
  // A dry run changes nothing: it takes no lock, so it also runs beside another step.
  const release = request.dryRun ? () => {} : acquireLock(stackLockDir(cfg))
  try {
    return await runUpgrade(cfg, request)
  } finally {
    release()
  }
})
