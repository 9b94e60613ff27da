// An upgrade as a journalled state machine: backup, the target staged and pulled (a failure
// changes nothing), then the switch of the live files and .env's tag, the node/ingestion services
// stopped, web alone until its migrations are done, everything started, health awaited. A failure
// after the switch puts the previous files and tag back and starts the previous version. The
// journal makes a kill -9 at any point recoverable: the next run finishes the upgrade or rolls it
// back. A new PostgreSQL major is refused unless asked to move the data (pg-major.mts).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { compose, stackServices } from '../core/docker.mts'
import { type Config, isGitRefName, loadConfig, setEnvValue } from '../core/env.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { describeProbe, formatElapsed } from '../core/health.mts'
import { adoptVersion } from '../stack/posthog-version.mts'
import { type PrepareResult, prepareStack } from '../stack/prepare.mts'
import {
  describeStuckServices,
  type StartOptions,
  startDataStores,
  startEverything,
  startStack,
  startWebAlone,
  waitForHealthy,
  waitForMigrations,
  waitForServices,
} from '../stack/startup.mts'
import { checkoutCommit, displayPath, takeBackup } from './backup.mts'
import { moveIntoNewMajor, undoMove } from './pg-major.mts'
import { formatPlan, servicesToStop } from './upgrade.mts'
import {
  appendUpgradeLog,
  closeUpgrade,
  hasSnapshot,
  type PostgresMajorState,
  readJournal,
  restoreSnapshot,
  resumption,
  rollbackCheckout,
  STAGING_DIR,
  takeSnapshot,
  type UpgradeJournal,
  type UpgradeStep,
  writeJournal,
} from './upgrade-journal.mts'
import {
  buildPlan,
  type PlanInput,
  type PreflightProblem,
  postgresMajorPlan,
  preflight,
  pullImages,
  readStackFile,
  stage,
  withTag,
} from './upgrade-stage.mts'

export interface UpgradeRequest {
  /** The target; without it, only an interrupted upgrade is finished (or rolled back). */
  to?: string
  /** Print the plan and change nothing. */
  dryRun: boolean
  /** Upgrade although PostHog is not healthy now. */
  force: boolean
  /** Roll an interrupted upgrade back instead of finishing it. */
  rollback: boolean
  /** Move the data into a new PostgreSQL major. */
  postgresMajor: boolean
  /** Back ClickHouse up too. */
  clickhouse: boolean
  /** Download the GeoLite2 database when preparing the new version. */
  geoip: boolean
  /** --min-free-disk in GB as given; undefined: the default. */
  minFreeDisk?: string
  /** How long web's migrations, and then health, may take. */
  timeoutMs: number
  /** Retry n of a pull or compose up waits n times this. */
  retryBackoffMs: number
  /** How long every service must stay up after a start. */
  settleMs: number
  log: (line: string) => void
  warn: (line: string) => void
}

interface Context extends UpgradeRequest {
  cfg: Config
}

/** Thrown by a step after the switch: it names the step, and triggers the rollback. */
class StepFailure extends Error {
  readonly step: string
  constructor(step: string, message: string) {
    super(message)
    this.step = step
  }
}

/** Runs `step`; its failure becomes a StepFailure named `name`. */
async function as<T>(name: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (e) {
    throw new StepFailure(name, (e as Error).message)
  }
}

type JournalBase = Omit<UpgradeJournal, 'step' | 'version'>

function journalFor(ctx: Context, base: JournalBase, step: UpgradeStep): UpgradeJournal {
  const j: UpgradeJournal = { version: 1, ...base, step }
  writeJournal(ctx.cfg.stackDir, j)
  return j
}

/** Sets POSTHOG_APP_TAG in the user's .env in place; every other line stays as it is. */
function writeEnvTag(cfg: Config, tag: string): void {
  const text = fs.readFileSync(cfg.envFile, 'utf8')
  writeFileAtomic(cfg.envFile, setEnvValue(text, 'POSTHOG_APP_TAG', tag), { mode: 0o600 })
}

function reload(cfg: Config): Config {
  return loadConfig({ root: cfg.root, envFile: cfg.envFile })
}

const backupNote = (j: UpgradeJournal) => `backup: ${j.backup ? displayPath(j.backup) : 'none'}`

/**
 * Finishes or rolls back an upgrade a previous run left in its journal, then (with a target)
 * upgrades. The caller holds the stack lock unless this is a dry run. Returns the exit code.
 */
export async function runUpgrade(cfg: Config, req: UpgradeRequest): Promise<number> {
  const ctx: Context = { ...req, cfg }
  const journal = readJournal(cfg.stackDir)
  if (journal && !req.dryRun) {
    const done = await recover(ctx, journal)
    if (done !== undefined) return done
  } else if (req.rollback) throw new UsageError('there is no interrupted upgrade to roll back')
  if (!req.to) throw new UsageError('--to TAG is required (see --help)')
  return upgrade({ ...ctx, cfg: reload(cfg) }, req.to)
}

async function recover(ctx: Context, j: UpgradeJournal): Promise<number | undefined> {
  const next = resumption(j, ctx)
  ctx.log(`found an interrupted upgrade ${j.from} -> ${j.to} (step ${j.step})`)
  if (next.action === 'discard') {
    closeUpgrade(ctx.cfg.stackDir, { from: j.from, to: j.to, result: 'discarded', detail: next.detail })
    ctx.log('it stopped before anything live changed; its leftovers are removed')
    return next.thenUpgrade ? undefined : 0
  }
  if (next.action === 'rollback') return rollback(ctx, j, next.failure, next.requested)
  ctx.log('finishing it (pass --rollback to roll it back instead)')
  return afterSwitch(ctx, j, next.note)
}

/** Closes the upgrade as failed when `step` throws (nothing live changed yet), and rethrows. */
async function orClose<T>(ctx: Context, to: string, detail: (e: Error) => string, step: () => T): Promise<T> {
  try {
    return await step()
  } catch (e) {
    closeUpgrade(ctx.cfg.stackDir, { from: ctx.cfg.appTag, to, result: 'failed', detail: detail(e as Error) })
    throw e
  }
}

async function dryRun(ctx: Context, to: string, problems: PreflightProblem[]): Promise<number> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'posthog-upgrade-plan-'))
  try {
    const staging = path.join(tmp, 'stack')
    const prepared = await stage(ctx.cfg, to, staging)
    const fromCommit = await checkoutCommit(ctx.cfg.stackDir)
    ctx.log(formatPlan(buildPlan(ctx.cfg, { ...planOptions(ctx, to, staging, prepared), fromCommit })))
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  for (const p of problems) ctx.warn(`pre-flight: ${p.text}`)
  ctx.log('dry run: nothing was changed')
  return 0
}

function planOptions(ctx: Context, to: string, staging: string, prepared: PrepareResult): PlanInput {
  return { to, staging, prepared, postgresMajor: ctx.postgresMajor, clickhouse: ctx.clickhouse }
}

/** A fresh upgrade: pre-flight, staging, plan, backup, pull; then the switch. */
async function upgrade(ctx: Context, to: string): Promise<number> {
  const { cfg } = ctx
  if (!isGitRefName(to)) throw new UsageError(`--to ${to} is not a tag, branch or commit`)
  const problems = await preflight(cfg, to, ctx.minFreeDisk)
  const blocking = problems.filter((p) => !(ctx.force && p.forcible)).map((p) => p.text)
  if (ctx.dryRun) return dryRun(ctx, to, problems)
  if (blocking.length) {
    for (const p of blocking.slice(1)) ctx.warn(`upgrade: pre-flight: ${p}`)
    throw new RuntimeFailure(`pre-flight: ${blocking[0]}`)
  }
  for (const p of problems) ctx.warn(`pre-flight (forced): ${p.text}`)

  const base = {
    from: cfg.appTag,
    to,
    fromCommit: await checkoutCommit(cfg.stackDir),
    startedAt: new Date().toISOString(),
  }
  const staging = path.join(cfg.stackDir, STAGING_DIR)
  journalFor(ctx, base, 'staging')
  const prepared = await orClose(
    ctx,
    to,
    (e) => e.message,
    () => stage(cfg, to, staging),
  )
  if (to === cfg.appTag && prepared.commit === base.fromCommit) {
    closeUpgrade(cfg.stackDir, { from: base.from, to, result: 'discarded', detail: 'already at that commit' })
    ctx.log(
      `PostHog ${to} is already at its newest installable commit ${prepared.commit.slice(0, 12)}; nothing to do`,
    )
    return 0
  }
  const plan = buildPlan(cfg, { ...planOptions(ctx, to, staging, prepared), fromCommit: base.fromCommit })
  ctx.log(formatPlan(plan))
  const postgresMajor = await orClose(
    ctx,
    to,
    (e) => `refused: ${e.message}`,
    () => postgresMajorPlan(cfg.stackDir, plan, ctx.postgresMajor, ctx.log),
  )

  journalFor(ctx, base, 'backup')
  ctx.log('backing up before anything changes')
  const allDatabases = postgresMajor !== undefined
  const { dir: backup } = await orClose(
    ctx,
    to,
    (e) => `backup failed: ${e.message}`,
    () => takeBackup(cfg, { log: ctx.log, clickhouse: ctx.clickhouse, allDatabases }),
  )
  ctx.log(`backup written: ${displayPath(backup)}`)

  ctx.log(`pulling the images of ${prepared.enabledServices.length} services`)
  try {
    await orClose(
      ctx,
      to,
      (e) => `pull failed: ${e.message}`,
      () => pullImages(staging, prepared.enabledServices, { backoffMs: ctx.retryBackoffMs, log: ctx.log }),
    )
  } catch (e) {
    throw new RuntimeFailure(
      `pulling the images of PostHog ${to} failed: ${(e as Error).message}; nothing was changed`,
      `check the network and run upgrade again (backup: ${displayPath(backup)})`,
    )
  }
  const pulled = journalFor(ctx, { ...base, backup, postgresMajor }, 'pulled')
  takeSnapshot(cfg.stackDir, cfg.envFile)
  ctx.log(`switching the live files and POSTHOG_APP_TAG to ${to}`)
  return afterSwitch(ctx, pulled)
}

// ---------------------------------------------------------------------------------------------
// After the switch (shared by a fresh upgrade and a resumed one)

async function afterSwitch(ctx: Context, j: UpgradeJournal, note = ''): Promise<number> {
  try {
    await switchAndMigrate(ctx, j)
  } catch (e) {
    const failure = e instanceof StepFailure ? `${e.step} failed: ${e.message}` : (e as Error).message
    return rollback(ctx, j, failure)
  }
  return succeed(ctx, j, note)
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
  const prepared = await as('prepare', () => prepareStack(cfg, { geoip: ctx.geoip, log: () => {} }))
  const services = await stackServices(cfg.stackDir)
  const startOpts: StartOptions = { services, log: ctx.log, retryBackoffMs: ctx.retryBackoffMs }
  await runPostgresMajor(ctx, base, cfg, startOpts)

  journalFor(ctx, base, 'migrating')
  const stop = servicesToStop(
    readStackFile(cfg.stackDir, 'docker-compose.yml'),
    readStackFile(cfg.stackDir, 'docker-compose.base.yml'),
  ).filter((s) => prepared.enabledServices.includes(s))
  ctx.log(`stopping the node, ingestion and worker services while web migrates: ${stop.join(', ') || 'none'}`)
  if (stop.length) {
    const out = await compose(cfg.stackDir, ['stop', ...stop], { timeout: '10m', nothrow: true })
    if (!out.ok)
      throw new StepFailure('stop', out.stderr.trim().split('\n').at(-1) ?? 'docker compose stop failed')
  }
  const started = Date.now()
  await as('start web', () => startWebAlone(cfg, startOpts))
  const migrated = await waitForMigrations(cfg, { ...startOpts, timeoutMs: ctx.timeoutMs })
  if (!migrated.ok)
    throw new StepFailure(
      'migrations',
      `web's migrations did not finish within ${formatElapsed(ctx.timeoutMs)} (last /_health: ${describeProbe(migrated.last)})`,
    )
  ctx.log(`web is up on ${j.to} after ${formatElapsed(migrated.elapsedMs)} (migrations done)`)

  journalFor(ctx, base, 'starting')
  await as('start everything', () => startEverything(cfg, startOpts))
  const left = Math.max(1000, ctx.timeoutMs - (Date.now() - started))
  const healthy = await waitForHealthy(cfg, { ...startOpts, timeoutMs: left })
  if (!healthy.ok) {
    for (const line of await describeStuckServices(cfg, services.expected, services.oneShot)) ctx.warn(line)
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

/** The move into the new major, as the step after the switch; journalled after each of its steps. */
async function runPostgresMajor(ctx: Context, base: JournalBase, cfg: Config, startOpts: StartOptions) {
  const pm = base.postgresMajor
  if (!pm) return
  if (pm.state !== 'restored') {
    journalFor(ctx, base, 'postgres-major')
    base.postgresMajor = await as('postgres-major', () =>
      moveIntoNewMajor({
        stackDir: cfg.stackDir,
        backupDir: base.backup ?? '',
        state: pm,
        save: (state) => journalFor(ctx, { ...base, postgresMajor: state }, 'postgres-major'),
        log: ctx.log,
      }),
    )
    ctx.log(`PostgreSQL ${pm.to} holds the restored data; the ${pm.from} data stays in volume ${pm.aside}`)
  }
  // Everything was stopped for the move: the data stores come back before web migrates.
  await as('start the data stores', () => startDataStores(cfg, startOpts))
}

function succeed(ctx: Context, j: UpgradeJournal, note: string): number {
  const pm = readJournal(ctx.cfg.stackDir)?.postgresMajor
  closeUpgrade(ctx.cfg.stackDir, { from: j.from, to: j.to, result: 'ok', detail: note || undefined })
  ctx.log(`PostHog upgraded ${j.from} -> ${j.to} and healthy${note ? ` (${note})` : ''}; ${backupNote(j)}`)
  if (pm)
    ctx.log(
      `the PostgreSQL ${pm.from} data is kept in volume ${pm.aside}: once PostgreSQL ${pm.to} has served you well, remove it with: docker volume rm ${pm.aside}`,
    )
  return 0
}

// ---------------------------------------------------------------------------------------------
// Rollback

/**
 * Puts the previous files and tag back, starts the previous version and waits for health. Throws
 * (exit 1) unless the rollback was what the user asked for (`requested`) and it worked.
 */
async function rollback(
  ctx: Context,
  j: UpgradeJournal,
  failure: string,
  requested = false,
): Promise<number> {
  const postgresMajor = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  journalFor(ctx, { ...j, postgresMajor, failure }, 'rolling-back')
  ctx.warn(`upgrade: ${failure}; rolling back to ${j.from}`)
  const keptNewData = await undoPostgresMajor(ctx, j, failure)
  writeEnvTag(ctx.cfg, j.from)
  const cfg = withTag(reload(ctx.cfg), j.from)
  // Its generated files (STACK_DIR/.env with the image tag) come from the snapshot.
  const checkoutAt = rollbackCheckout(j, hasSnapshot(cfg.stackDir))
  try {
    await prepareStack(withTag(cfg, checkoutAt), { geoip: false, log: () => {} })
  } catch (e) {
    ctx.warn(
      `could not move the PostHog checkout back to ${j.from} (${(e as Error).message}); using the saved files`,
    )
  }
  if (hasSnapshot(cfg.stackDir)) restoreSnapshot(cfg.stackDir)
  const result = await startStack(cfg, {
    services: await stackServices(cfg.stackDir),
    log: ctx.log,
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
      `restore the database with 'npx tsx scripts/restore.mts --from ${j.backup ? path.basename(j.backup) : '<backup>'}' (${backupNote(j)}), or run upgrade again to retry the rollback`,
    )
  }
  closeUpgrade(cfg.stackDir, { from: j.from, to: j.to, result: 'rolled-back', detail: failure })
  if (requested) {
    ctx.log(`rolled back to ${j.from}, which is healthy again (${backupNote(j)})${keptNewData}`)
    return 0
  }
  throw new RuntimeFailure(
    `upgrade to ${j.to} failed (${failure}); rolled back to ${j.from}, which is healthy again${keptNewData}`,
    `${backupNote(j)}; history in ${displayPath(path.join(cfg.stackDir, 'upgrades.log'))}`,
  )
}

/** Before a rollback starts the previous version: its PostgreSQL data back under the volume's name. */
async function undoPostgresMajor(ctx: Context, j: UpgradeJournal, failure: string): Promise<string> {
  const pm: PostgresMajorState | undefined = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  if (!pm) return ''
  try {
    const done = await undoMove({
      stackDir: ctx.cfg.stackDir,
      backupDir: j.backup ?? '',
      state: pm,
      save: (state) => journalFor(ctx, { ...j, failure, postgresMajor: state }, 'rolling-back'),
      log: ctx.log,
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
