// upgrade --to TAG: backup, prepare the target's files in a staging dir, pull (a failure changes
// nothing), switch the live files and .env's tag, stop the node/ingestion services, start web
// alone until its migrations are done, start everything, wait for health. A failure after the
// pull puts the previous files and tag back and starts the previous version. A journal makes a
// kill -9 at any point recoverable: the next run finishes the upgrade or rolls it back.
// A new PostgreSQL major is refused unless --postgres-major moves the data (lib/ops/pg-major.mts).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  defineScript,
  type Flags,
  parseDuration,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { MIN_FREE_DISK_FLAG, minFreeDiskBytes } from '../lib/core/disk.mts'
import { compose, stackServices } from '../lib/core/docker.mts'
import {
  assertSecretsUnchanged,
  type Config,
  ENV_FILE_FLAG,
  isGitRefName,
  loadConfig,
  parseEnvText,
  setEnvValue,
} from '../lib/core/env.mts'
import { readIfExists, writeFileAtomic } from '../lib/core/fs.mts'
import { describeProbe, formatElapsed, healthUrl, isHealthy, pollHealth } from '../lib/core/health.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { checkoutCommit, displayPath, takeBackup } from '../lib/ops/backup.mts'
import { asideVolumeName, dbVolume, moveIntoNewMajor, undoMove } from '../lib/ops/pg-major.mts'
import {
  appendUpgradeLog,
  clearJournal,
  composeImages,
  composeServiceNames,
  effectiveImages,
  formatPlan,
  hasSnapshot,
  type LogEntry,
  type MajorChange,
  majorChanges,
  type PostgresMajorState,
  readJournal,
  recoveryFor,
  restoreSnapshot,
  SNAPSHOT_DIR,
  STAGING_DIR,
  serviceDiff,
  servicesToStop,
  takeSnapshot,
  type UpgradeJournal,
  type UpgradePlan,
  type UpgradeStep,
  writeJournal,
} from '../lib/ops/upgrade.mts'
import { adoptVersion, isFrozenBranch } from '../lib/stack/posthog-version.mts'
import { type PrepareResult, prepareStack } from '../lib/stack/prepare.mts'
import {
  describeStuckServices,
  SETTLE_FLAG,
  stackLockDir,
  startDataStores,
  startEverything,
  startStack,
  startWebAlone,
  waitForHealthy,
  waitForMigrations,
  waitForServices,
} from '../lib/stack/startup.mts'

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
      help: 'back ClickHouse up too before upgrading (needs the /backups mount, see README)',
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
    'retry-backoff': {
      type: 'string',
      env: 'HOMELAB_RETRY_BACKOFF',
      help: 'wait before retrying a failed pull or compose up (n-th retry waits n times this)',
      default: '5s',
    },
    settle: SETTLE_FLAG,
    'no-geoip': { type: 'boolean', env: 'HOMELAB_NO_GEOIP', help: 'skip the GeoLite2 download' },
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

type UpgradeFlags = Flags<typeof spec.flags>

interface Context {
  cfg: Config
  flags: UpgradeFlags
  timeoutMs: number
  retryBackoffMs: number
  /** How long every service must stay up after a start (--settle). */
  settleMs: number
}

/** Thrown by a step after the switch: it names the step, and triggers the rollback. */
class StepFailure extends Error {
  readonly step: string
  constructor(step: string, message: string) {
    super(message)
    this.step = step
  }
}

// ---------------------------------------------------------------------------------------------
// Small I/O helpers

function withTag(cfg: Config, tag: string, stackDir = cfg.stackDir): Config {
  return {
    ...cfg,
    appTag: tag,
    stackDir,
    raw: { ...cfg.raw, POSTHOG_APP_TAG: tag, STACK_DIR: stackDir },
  }
}

/** Sets POSTHOG_APP_TAG in the user's .env in place; every other line stays as it is. */
function writeEnvTag(cfg: Config, tag: string): void {
  const text = fs.readFileSync(cfg.envFile, 'utf8')
  writeFileAtomic(cfg.envFile, setEnvValue(text, 'POSTHOG_APP_TAG', tag), { mode: 0o600 })
}

function reload(cfg: Config): Config {
  return loadConfig({ root: cfg.root, envFile: cfg.envFile })
}

function freeBytes(dir: string): number {
  let probe = path.resolve(dir)
  while (!fs.existsSync(probe) && path.dirname(probe) !== probe) probe = path.dirname(probe)
  const st = fs.statfsSync(probe)
  return st.bavail * st.bsize
}

const GiB = 1024 ** 3
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const quiet = () => {}

type JournalBase = Omit<UpgradeJournal, 'step' | 'version'>

function journalFor(ctx: Context, base: JournalBase, step: UpgradeStep): UpgradeJournal {
  const j: UpgradeJournal = { version: 1, ...base, step }
  writeJournal(ctx.cfg.stackDir, j)
  return j
}

/** Ends an upgrade for good: staging and snapshot removed, its line in upgrades.log, no journal left. */
function closeUpgrade(stackDir: string, entry: Omit<LogEntry, 'time'>): void {
  fs.rmSync(path.join(stackDir, STAGING_DIR), { recursive: true, force: true })
  fs.rmSync(path.join(stackDir, SNAPSHOT_DIR), { recursive: true, force: true })
  appendUpgradeLog(stackDir, { time: new Date(), ...entry })
  clearJournal(stackDir)
}

// ---------------------------------------------------------------------------------------------
// Pre-flight and plan

async function preflight(ctx: Context, to: string): Promise<string[]> {
  const { cfg, flags } = ctx
  const problems: string[] = []
  const need = minFreeDiskBytes(flags['min-free-disk'], false)
  const backupDir = path.resolve(cfg.root, cfg.raw.BACKUP_DIR ?? 'backups')
  for (const dir of new Set([cfg.stackDir, backupDir])) {
    const free = freeBytes(dir)
    if (free < need)
      problems.push(
        `only ${(free / GiB).toFixed(1)} GB free for ${displayPath(dir)}, ${(need / GiB).toFixed(0)} GB needed; free some disk (docker system prune) or lower --min-free-disk`,
      )
  }
  // A frozen branch (latest) is resolved again: that is how it moves on.
  if (to === cfg.appTag && !isFrozenBranch(cfg.stackDir, to))
    throw new UsageError(`PostHog is already at ${to} (POSTHOG_APP_TAG in ${cfg.envFile})`)
  assertSecretsUnchanged(cfg, false)
  const now = await pollHealth({ url: healthUrl(cfg.proxyPort), timeoutMs: 3000 })
  if (!isHealthy(now.last))
    problems.push(
      `PostHog is not healthy now (/_health: ${describeProbe(now.last)}); fix it first (npx tsx scripts/up.mts), or pass --force`,
    )
  return problems
}

function readStackFile(dir: string, name: string): string | undefined {
  return readIfExists(path.join(dir, name))
}

function buildPlan(
  ctx: Context,
  to: string,
  staging: string,
  prepared: PrepareResult,
  fromCommit?: string,
): UpgradePlan {
  const { cfg, flags } = ctx
  const liveCompose = readStackFile(cfg.stackDir, 'docker-compose.yml')
  const newCompose = readStackFile(staging, 'docker-compose.yml')
  const newBase = readStackFile(staging, 'docker-compose.base.yml')
  const stagingEnv = parseEnvText(readStackFile(staging, '.env') ?? '')
  // The staged env file holds the image tags the pull uses (a frozen branch: its commit).
  const env = { ...cfg.raw, POSTHOG_APP_TAG: to, ...stagingEnv }
  return {
    from: cfg.appTag,
    to,
    fromCommit,
    toCommit: prepared.commit,
    ...serviceDiff(composeServiceNames(liveCompose), composeServiceNames(newCompose)),
    images: composeImages(newCompose, newBase, env, prepared.disabledServices),
    stop: servicesToStop(newCompose, newBase).filter((s) => prepared.enabledServices.includes(s)),
    majors: dataStoreChanges(cfg, to, staging),
    postgresMajor: flags['postgres-major'],
    clickhouseBackup: flags.clickhouse,
  }
}

// ---------------------------------------------------------------------------------------------
// Major versions of PostgreSQL and ClickHouse

/** The images Compose runs now and would run after the switch (layered files, interpolated). */
function dataStoreChanges(cfg: Config, to: string, staging: string): MajorChange[] {
  const files = (dir: string) =>
    ['docker-compose.yml', 'docker-compose.override.yml'].map((f) => readStackFile(dir, f))
  const local = readStackFile(cfg.stackDir, 'docker-compose.local.yml')
  const liveEnv = { ...cfg.raw, ...parseEnvText(readStackFile(cfg.stackDir, '.env') ?? '') }
  const newEnv = { ...cfg.raw, ...parseEnvText(readStackFile(staging, '.env') ?? ''), POSTHOG_APP_TAG: to }
  const base = (dir: string) => readStackFile(dir, 'docker-compose.base.yml')
  const before = effectiveImages([...files(cfg.stackDir), local], base(cfg.stackDir), liveEnv)
  const after = effectiveImages([...files(staging), local], base(staging), newEnv)
  return majorChanges(before, after)
}

/**
 * Refuses what the plain path would break (exit 2): a PostgreSQL downgrade, or a new major
 * without --postgres-major. With it, what the move needs: the db volume and where to keep it.
 */
function postgresMajorPlan(ctx: Context, majors: MajorChange[], to: string): PostgresMajorState | undefined {
  const pg = majors.find((m) => m.engine === 'PostgreSQL')
  if (!pg) {
    if (ctx.flags['postgres-major'])
      say('--postgres-major: PostgreSQL keeps its major version; there is nothing to move')
    return undefined
  }
  const what = `PostgreSQL ${pg.from ?? '?'} -> ${pg.to ?? '?'} (db: ${pg.fromImage} -> ${pg.toImage})`
  if (pg.kind === 'downgrade')
    throw new UsageError(
      `${what} is a downgrade, which the data does not survive; pick a target with the same or a newer PostgreSQL`,
    )
  const wanted = ctx.flags['postgres-major']
  if (pg.kind === 'unknown' && !wanted) return undefined // the plan says to check; --postgres-major moves anyway
  if (!wanted)
    throw new UsageError(
      `${what} is a major upgrade: the new server cannot read the old data. Run upgrade --to ${to} --postgres-major ` +
        '(it backs up every database, keeps the old volume aside and restores into the new major; README: Upgrade)',
    )
  const volume = dbVolume(readStackFile(ctx.cfg.stackDir, 'docker-compose.yml') ?? '')
  if (!volume)
    throw new UsageError(
      'the db service keeps its data in a bind mount, not a named volume: move it into the new major yourself (dump, new directory, restore)',
    )
  const from = pg.from ?? 'old'
  const aside = asideVolumeName(volume, from)
  return { from, to: pg.to ?? 'new', volume, aside, image: pg.toImage, state: 'planned' }
}

/** The move into the new major, as the step after the switch; journalled after each of its steps. */
async function runPostgresMajor(
  ctx: Context,
  base: JournalBase,
  cfg: Config,
  startOpts: Parameters<typeof startDataStores>[1],
): Promise<void> {
  const pm = base.postgresMajor
  if (!pm) return
  if (pm.state !== 'restored') {
    journalFor(ctx, base, 'postgres-major')
    try {
      base.postgresMajor = await moveIntoNewMajor({
        stackDir: cfg.stackDir,
        backupDir: base.backup ?? '',
        state: pm,
        save: (state) => journalFor(ctx, { ...base, postgresMajor: state }, 'postgres-major'),
        log: say,
      })
    } catch (e) {
      throw new StepFailure('postgres-major', (e as Error).message)
    }
    say(`PostgreSQL ${pm.to} holds the restored data; the ${pm.from} data stays in volume ${pm.aside}`)
  }
  // Everything was stopped for the move: the data stores come back before web migrates.
  await startDataStores(cfg, startOpts).catch((e: Error) => {
    throw new StepFailure('start the data stores', e.message)
  })
}

/** Before a rollback starts the previous version: its PostgreSQL data back under the volume's name. */
async function undoPostgresMajor(ctx: Context, j: UpgradeJournal, failure: string): Promise<string> {
  const pm = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  if (!pm) return ''
  try {
    const done = await undoMove({
      stackDir: ctx.cfg.stackDir,
      backupDir: j.backup ?? '',
      state: pm,
      save: (state) => journalFor(ctx, { ...j, failure, postgresMajor: state }, 'rolling-back'),
      log: say,
    })
    return done.newAside
      ? `; the PostgreSQL ${pm.to} data of the attempt is kept in volume ${done.newAside}`
      : ''
  } catch (e) {
    throw new RuntimeFailure(
      `upgrade to ${j.to} failed (${failure}) and putting the PostgreSQL ${pm.from} data back failed: ${(e as Error).message}`,
      `the ${pm.from} data is safe in volume ${pm.aside}; run upgrade --rollback again, or restore the backup (${j.backup ? displayPath(j.backup) : 'none'})`,
    )
  }
}

async function stage(cfg: Config, to: string, staging: string): Promise<PrepareResult> {
  fs.rmSync(staging, { recursive: true, force: true })
  try {
    return await prepareStack(withTag(cfg, to, staging), { geoip: false, log: quiet })
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true })
    // A target that does not exist, or that the configuration cannot run, is bad input (exit 2).
    if (e instanceof UsageError)
      throw new UsageError(`could not prepare PostHog ${to}: ${e.message}; nothing was changed`)
    if (e instanceof RuntimeFailure)
      throw new RuntimeFailure(`could not prepare PostHog ${to}: ${e.message}`, 'nothing was changed')
    throw e
  }
}

// ---------------------------------------------------------------------------------------------
// The steps after the switch (shared by a fresh upgrade and a resumed one)

async function pull(ctx: Context, staging: string, services: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const out = await compose(staging, ['pull', ...services], { timeout: '60m', nothrow: true })
    if (out.ok) return
    const why =
      `${out.stderr}\n${out.stdout}`.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${out.exitCode}`
    if (attempt >= 3) throw new Error(why)
    say(`image pull failed (${why}); retry ${attempt} of 2 shortly`)
    await sleep(ctx.retryBackoffMs * attempt)
  }
}

async function switchAndMigrate(ctx: Context, j: UpgradeJournal): Promise<void> {
  const base: JournalBase = {
    from: j.from,
    to: j.to,
    fromCommit: j.fromCommit,
    backup: j.backup,
    startedAt: j.startedAt,
    postgresMajor: j.postgresMajor,
  }
  journalFor(ctx, base, 'switching')
  writeEnvTag(ctx.cfg, j.to)
  // The live checkout and image tags go to the very commit staged and pulled.
  adoptVersion(path.join(ctx.cfg.stackDir, STAGING_DIR), ctx.cfg.stackDir, j.to)
  const cfg = withTag(reload(ctx.cfg), j.to)
  let prepared: PrepareResult
  try {
    prepared = await prepareStack(cfg, { geoip: !ctx.flags['no-geoip'], log: quiet })
  } catch (e) {
    throw new StepFailure('prepare', (e as Error).message)
  }
  const services = await stackServices(cfg.stackDir)
  const startOpts = { services, log: say, retryBackoffMs: ctx.retryBackoffMs }
  await runPostgresMajor(ctx, base, cfg, startOpts)

  journalFor(ctx, base, 'migrating')
  const compose_ = readStackFile(cfg.stackDir, 'docker-compose.yml')
  const stop = servicesToStop(compose_, readStackFile(cfg.stackDir, 'docker-compose.base.yml')).filter((s) =>
    prepared.enabledServices.includes(s),
  )
  say(`stopping the node, ingestion and worker services while web migrates: ${stop.join(', ') || 'none'}`)
  if (stop.length) {
    const out = await compose(cfg.stackDir, ['stop', ...stop], { timeout: '10m', nothrow: true })
    if (!out.ok)
      throw new StepFailure('stop', out.stderr.trim().split('\n').at(-1) ?? 'docker compose stop failed')
  }
  const started = Date.now()
  try {
    await startWebAlone(cfg, startOpts)
  } catch (e) {
    throw new StepFailure('start web', (e as Error).message)
  }
  const migrated = await waitForMigrations(cfg, { ...startOpts, timeoutMs: ctx.timeoutMs })
  if (!migrated.ok)
    throw new StepFailure(
      'migrations',
      `web's migrations did not finish within ${formatElapsed(ctx.timeoutMs)} (last /_health: ${describeProbe(migrated.last)})`,
    )
  say(`web is up on ${j.to} after ${formatElapsed(migrated.elapsedMs)} (migrations done)`)

  journalFor(ctx, base, 'starting')
  try {
    await startEverything(cfg, startOpts)
  } catch (e) {
    throw new StepFailure('start everything', (e as Error).message)
  }
  const left = Math.max(1000, ctx.timeoutMs - (Date.now() - started))
  const healthy = await waitForHealthy(cfg, { ...startOpts, timeoutMs: left })
  if (!healthy.ok) {
    for (const line of await describeStuckServices(cfg, services.expected, services.oneShot)) warn(line)
    throw new StepFailure(
      'health',
      `PostHog ${j.to} did not become healthy within ${formatElapsed(ctx.timeoutMs)} (last /_health: ${describeProbe(healthy.last)})`,
    )
  }
  const settled = await waitForServices(cfg, {
    ...services,
    settleMs: ctx.settleMs,
    timeoutMs: Math.max(ctx.settleMs + 1000, ctx.timeoutMs - (Date.now() - started)),
  })
  if (!settled.ok)
    throw new StepFailure('services', settled.problems.map((p) => `${p.service} ${p.text}`).join('; '))
}

function succeed(ctx: Context, j: UpgradeJournal, note = ''): number {
  const pm = readJournal(ctx.cfg.stackDir)?.postgresMajor
  closeUpgrade(ctx.cfg.stackDir, { from: j.from, to: j.to, result: 'ok', detail: note || undefined })
  say(
    `PostHog upgraded ${j.from} -> ${j.to} and healthy${note ? ` (${note})` : ''}; backup: ${j.backup ? displayPath(j.backup) : 'none'}`,
  )
  if (pm)
    say(
      `the PostgreSQL ${pm.from} data is kept in volume ${pm.aside}: once PostgreSQL ${pm.to} has served you well, remove it with: docker volume rm ${pm.aside}`,
    )
  return 0
}

/**
 * Puts the previous files and tag back, starts the previous version and waits for health. Throws
 * (exit 1) unless the rollback was what the user asked for (`--rollback`) and it worked.
 */
async function rollback(
  ctx: Context,
  j: UpgradeJournal,
  failure: string,
  requested = false,
): Promise<number> {
  const where = `backup: ${j.backup ? displayPath(j.backup) : 'none'}`
  const postgresMajor = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  journalFor(ctx, { ...j, postgresMajor, failure }, 'rolling-back')
  warn(`upgrade: ${failure}; rolling back to ${j.from}`)
  const keptNewData = await undoPostgresMajor(ctx, j, failure)
  writeEnvTag(ctx.cfg, j.from)
  const cfg = withTag(reload(ctx.cfg), j.from)
  // The checkout goes back to the exact commit it was at: a branch such as `latest` may have moved
  // on since. Its generated files (STACK_DIR/.env with the image tag) come from the snapshot.
  const checkoutAt = j.fromCommit && hasSnapshot(cfg.stackDir) ? j.fromCommit : j.from
  try {
    await prepareStack(withTag(cfg, checkoutAt), { geoip: false, log: quiet })
  } catch (e) {
    warn(
      `could not move the PostHog checkout back to ${j.from} (${(e as Error).message}); using the saved files`,
    )
  }
  if (hasSnapshot(cfg.stackDir)) restoreSnapshot(cfg.stackDir)
  const result = await startStack(cfg, {
    services: await stackServices(cfg.stackDir),
    log: say,
    healthTimeoutMs: ctx.timeoutMs,
    retryBackoffMs: ctx.retryBackoffMs,
    settleMs: ctx.settleMs,
  }).catch((e: Error) => ({ ok: false, error: e.message }))
  if (!result.ok) {
    appendUpgradeLog(cfg.stackDir, {
      time: new Date(),
      from: j.from,
      to: j.to,
      result: 'failed',
      detail: failure,
    })
    throw new RuntimeFailure(
      `upgrade to ${j.to} failed (${failure}) and the previous version ${j.from} did not come back healthy either`,
      `restore the database with 'npx tsx scripts/restore.mts --from ${j.backup ? path.basename(j.backup) : '<backup>'}' (${where}), or run upgrade again to retry the rollback`,
    )
  }
  closeUpgrade(cfg.stackDir, { from: j.from, to: j.to, result: 'rolled-back', detail: failure })
  if (requested) {
    say(`rolled back to ${j.from}, which is healthy again (${where})${keptNewData}`)
    return 0
  }
  throw new RuntimeFailure(
    `upgrade to ${j.to} failed (${failure}); rolled back to ${j.from}, which is healthy again${keptNewData}`,
    `${where}; history in ${displayPath(path.join(cfg.stackDir, 'upgrades.log'))}`,
  )
}

async function afterSwitch(ctx: Context, j: UpgradeJournal, note = ''): Promise<number> {
  try {
    await switchAndMigrate(ctx, j)
  } catch (e) {
    const failure = e instanceof StepFailure ? `${e.step} failed: ${e.message}` : (e as Error).message
    return rollback(ctx, j, failure)
  }
  return succeed(ctx, j, note)
}

// ---------------------------------------------------------------------------------------------
// Entry points: a journal left by an interrupted run, or a fresh upgrade

async function recover(ctx: Context, j: UpgradeJournal): Promise<number | undefined> {
  const action = recoveryFor(j, ctx.flags.rollback)
  const to = ctx.flags.to
  if (to && to !== j.to && action !== 'discard')
    throw new UsageError(
      `an upgrade ${j.from} -> ${j.to} was interrupted (step ${j.step}): run upgrade without --to to finish it, or with --rollback`,
    )
  say(`found an interrupted upgrade ${j.from} -> ${j.to} (step ${j.step})`)
  if (action === 'discard') {
    closeUpgrade(ctx.cfg.stackDir, {
      from: j.from,
      to: j.to,
      result: 'discarded',
      detail: `interrupted at ${j.step}, before anything live changed`,
    })
    say('it stopped before anything live changed; its leftovers are removed')
    return to ? undefined : 0
  }
  if (action === 'rollback')
    return rollback(
      ctx,
      j,
      j.failure ?? `interrupted at ${j.step}, rolled back on request`,
      ctx.flags.rollback && !j.failure,
    )
  say(`finishing it (pass --rollback to roll it back instead)`)
  return afterSwitch(ctx, j, `resumed after an interruption at ${j.step}`)
}

async function upgrade(ctx: Context, to: string): Promise<number> {
  const { cfg, flags } = ctx
  if (!isGitRefName(to)) throw new UsageError(`--to ${to} is not a tag, branch or commit`)
  const problems = await preflight(ctx, to)
  const blocking = problems.filter((p) => !(flags.force && p.startsWith('PostHog is not healthy')))
  if (flags['dry-run']) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'posthog-upgrade-plan-'))
    try {
      const prepared = await stage(cfg, to, path.join(tmp, 'stack'))
      say(
        formatPlan(buildPlan(ctx, to, path.join(tmp, 'stack'), prepared, await checkoutCommit(cfg.stackDir))),
      )
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
    for (const p of problems) warn(`pre-flight: ${p}`)
    say('dry run: nothing was changed')
    return 0
  }
  if (blocking.length) {
    for (const p of blocking.slice(1)) warn(`upgrade: pre-flight: ${p}`)
    throw new RuntimeFailure(`pre-flight: ${blocking[0]}`)
  }
  for (const p of problems) warn(`pre-flight (forced): ${p}`)

  const base = {
    from: cfg.appTag,
    to,
    fromCommit: await checkoutCommit(cfg.stackDir),
    startedAt: new Date().toISOString(),
  }
  const staging = path.join(cfg.stackDir, STAGING_DIR)
  journalFor(ctx, base, 'staging')
  const prepared = await stage(cfg, to, staging).catch((e: Error) => {
    closeUpgrade(cfg.stackDir, { from: base.from, to, result: 'failed', detail: e.message })
    throw e
  })
  if (to === cfg.appTag && prepared.commit === base.fromCommit) {
    closeUpgrade(cfg.stackDir, { from: base.from, to, result: 'discarded', detail: 'already at that commit' })
    say(
      `PostHog ${to} is already at its newest installable commit ${prepared.commit.slice(0, 12)}; nothing to do`,
    )
    return 0
  }
  const plan = buildPlan(ctx, to, staging, prepared, base.fromCommit)
  say(formatPlan(plan))
  let postgresMajor: PostgresMajorState | undefined
  try {
    postgresMajor = postgresMajorPlan(ctx, plan.majors ?? [], to)
  } catch (e) {
    closeUpgrade(cfg.stackDir, {
      from: base.from,
      to,
      result: 'failed',
      detail: `refused: ${(e as Error).message}`,
    })
    throw e
  }

  journalFor(ctx, base, 'backup')
  say('backing up before anything changes')
  const allDatabases = postgresMajor !== undefined
  let backup: string
  try {
    backup = (await takeBackup(cfg, { log: say, clickhouse: ctx.flags.clickhouse, allDatabases })).dir
  } catch (e) {
    closeUpgrade(cfg.stackDir, {
      from: base.from,
      to,
      result: 'failed',
      detail: `backup failed: ${(e as Error).message}`,
    })
    throw e
  }
  say(`backup written: ${displayPath(backup)}`)

  say(`pulling the images of ${prepared.enabledServices.length} services`)
  try {
    await pull(ctx, staging, prepared.enabledServices)
  } catch (e) {
    closeUpgrade(cfg.stackDir, {
      from: base.from,
      to,
      result: 'failed',
      detail: `pull failed: ${(e as Error).message}`,
    })
    throw new RuntimeFailure(
      `pulling the images of PostHog ${to} failed: ${(e as Error).message}; nothing was changed`,
      `check the network and run upgrade again (backup: ${displayPath(backup)})`,
    )
  }
  const pulled = journalFor(ctx, { ...base, backup, postgresMajor }, 'pulled')
  takeSnapshot(cfg.stackDir, cfg.envFile)
  say(`switching the live files and POSTHOG_APP_TAG to ${to}`)
  return afterSwitch(ctx, pulled)
}

await runScript('upgrade', spec, async (flags) => {
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const ctx: Context = {
    cfg,
    flags,
    timeoutMs: flags.timeout ? parseDuration(flags.timeout, '--timeout') : cfg.healthTimeoutMs,
    retryBackoffMs: parseDuration(flags['retry-backoff'] ?? '5s', '--retry-backoff'),
    settleMs: parseDuration(flags.settle ?? '15s', '--settle'),
  }
  if (flags['dry-run'] && flags.rollback) throw new UsageError('--dry-run and --rollback do not go together')
  const release = flags['dry-run'] ? () => {} : acquireLock(stackLockDir(cfg))
  try {
    const journal = readJournal(cfg.stackDir)
    if (journal && !flags['dry-run']) {
      const done = await recover(ctx, journal)
      if (done !== undefined) return done
    } else if (flags.rollback) throw new UsageError('there is no interrupted upgrade to roll back')
    if (!flags.to) throw new UsageError('--to TAG is required (see --help)')
    return await upgrade({ ...ctx, cfg: reload(cfg) }, flags.to)
  } finally {
    release()
  }
})
