// An upgrade from its switch on (a fresh one, or one a previous run left unfinished): the live
// files and .env's tag switched, the data moved into a new PostgreSQL major when planned, the
// node/ingestion services stopped, web alone until its migrations are done, everything started,
// health awaited. Any failure rolls back: the previous files, tag (and PostgreSQL data) put back
// and the previous version started. Each step is journalled before it runs.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from '../core/cli.mts'
import { compose, stackServices } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { setEnvValue } from '../core/env-file.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { describeProbe, formatElapsed } from '../core/health.mts'
import { adoptVersion } from '../stack/posthog-version.mts'
import { prepareStack } from '../stack/prepare.mts'
import { describeStuckServices, waitForServices } from '../stack/readiness.mts'
import {
  type StartOptions,
  startDataStores,
  startEverything,
  startStack,
  startWebAlone,
  waitForHealthy,
  waitForMigrations,
} from '../stack/startup.mts'
import { displayPath } from './backup.mts'
import { moveIntoNewMajor, undoMove } from './pg-major.mts'
import { servicesToStop } from './upgrade.mts'
import {
  appendUpgradeLog,
  closeUpgrade,
  hasSnapshot,
  type JournalBase,
  journalStep,
  readJournal,
  restoreSnapshot,
  rollbackCheckout,
  STAGING_DIR,
  type UpgradeJournal,
} from './upgrade-journal.mts'
import { readStackFile, reload, withTag } from './upgrade-stage.mts'

/** What the steps after the switch need from the run. */
export interface SwitchContext {
  cfg: Config
  /** Download the GeoLite2 database when preparing the new version. */
  geoip: boolean
  /** How long web's migrations, and then health, may take. */
  timeoutMs: number
  /** Retry n of a pull or compose up waits n times this. */
  retryBackoffMs: number
  /** How long every service must stay up after a start. */
  settleMs: number
  log: (line: string) => void
  warn: (line: string) => void
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

/** Sets POSTHOG_APP_TAG in the user's .env in place; every other line stays as it is. */
function writeEnvTag(cfg: Config, tag: string): void {
  const text = fs.readFileSync(cfg.envFile, 'utf8')
  writeFileAtomic(cfg.envFile, setEnvValue(text, 'POSTHOG_APP_TAG', tag), { mode: 0o600 })
}

const backupNote = (j: UpgradeJournal) => `backup: ${j.backup ? displayPath(j.backup) : 'none'}`

/** Runs the steps after the switch; a failure rolls back. Returns the exit code. */
export async function afterSwitch(ctx: SwitchContext, j: UpgradeJournal, note = ''): Promise<number> {
  try {
    await switchAndMigrate(ctx, j)
  } catch (e) {
    const failure = e instanceof StepFailure ? `${e.step} failed: ${e.message}` : (e as Error).message
    return rollback(ctx, j, failure)
  }
  return succeed(ctx, j, note)
}

/** The new version live (files, tag, data), then web alone until migrated, then everything. */
async function switchAndMigrate(ctx: SwitchContext, j: UpgradeJournal): Promise<void> {
  const base: JournalBase = {
    from: j.from,
    to: j.to,
    fromCommit: j.fromCommit,
    backup: j.backup,
    startedAt: j.startedAt,
    postgresMajor: j.postgresMajor,
  }
  const stackDir = ctx.cfg.stackDir
  journalStep(stackDir, base, 'switching')
  const live = await switchFiles(ctx, j.to)
  await runPostgresMajor(ctx, base, live)
  journalStep(stackDir, base, 'migrating')
  await stopForMigrations(ctx, live)
  const started = Date.now()
  await migrate(ctx, live)
  journalStep(stackDir, base, 'starting')
  await startAll(ctx, live, started + ctx.timeoutMs)
}

/** The new version once it is live: its configuration, what prepare enabled, how to start it. */
interface Live {
  cfg: Config
  enabled: string[]
  start: StartOptions
}

/** .env's tag, the checkout and the generated files at the very commit staged and pulled. */
async function switchFiles(ctx: SwitchContext, to: string): Promise<Live> {
  writeEnvTag(ctx.cfg, to)
  adoptVersion(path.join(ctx.cfg.stackDir, STAGING_DIR), ctx.cfg.stackDir, to)
  const cfg = withTag(reload(ctx.cfg), to)
  const prepared = await as('prepare', () => prepareStack(cfg, { geoip: ctx.geoip, log: () => {} }))
  const services = await stackServices(cfg.stackDir)
  return {
    cfg,
    enabled: prepared.enabledServices,
    start: { services, log: ctx.log, retryBackoffMs: ctx.retryBackoffMs },
  }
}

/** Everything on the node image, ingestion and the workers stop: they would run on a schema in flux. */
async function stopForMigrations(ctx: SwitchContext, live: Live): Promise<void> {
  const stop = servicesToStop(
    readStackFile(live.cfg.stackDir, 'docker-compose.yml'),
    readStackFile(live.cfg.stackDir, 'docker-compose.base.yml'),
  ).filter((s) => live.enabled.includes(s))
  ctx.log(`stopping the node, ingestion and worker services while web migrates: ${stop.join(', ') || 'none'}`)
  if (!stop.length) return
  const out = await compose(live.cfg.stackDir, ['stop', ...stop], { timeout: '10m', nothrow: true })
  if (!out.ok)
    throw new StepFailure('stop', out.stderr.trim().split('\n').at(-1) ?? 'docker compose stop failed')
}

async function migrate(ctx: SwitchContext, live: Live): Promise<void> {
  await as('start web', () => startWebAlone(live.cfg, live.start))
  const migrated = await waitForMigrations(live.cfg, { ...live.start, timeoutMs: ctx.timeoutMs })
  if (!migrated.ok)
    throw new StepFailure(
      'migrations',
      `web's migrations did not finish within ${formatElapsed(ctx.timeoutMs)} (last /_health: ${describeProbe(migrated.last)})`,
    )
  ctx.log(`web is up on ${live.cfg.appTag} after ${formatElapsed(migrated.elapsedMs)} (migrations done)`)
}

/** Starts everything, then waits for health and for every service to stay up, until `deadline`. */
async function startAll(ctx: SwitchContext, live: Live, deadline: number): Promise<void> {
  const { cfg, start } = live
  const { services } = start
  await as('start everything', () => startEverything(cfg, start))
  const healthy = await waitForHealthy(cfg, { ...start, timeoutMs: Math.max(1000, deadline - Date.now()) })
  if (!healthy.ok) {
    for (const line of await describeStuckServices(cfg, services.expected, services.oneShot)) ctx.warn(line)
    throw new StepFailure(
      'health',
      `PostHog ${cfg.appTag} did not become healthy within ${formatElapsed(ctx.timeoutMs)} (last /_health: ${describeProbe(healthy.last)})`,
    )
  }
  const settled = await waitForServices(cfg, {
    ...services,
    settleMs: ctx.settleMs,
    timeoutMs: Math.max(ctx.settleMs + 1000, deadline - Date.now()),
  })
  if (!settled.ok)
    throw new StepFailure('services', settled.problems.map((p) => `${p.service} ${p.text}`).join('; '))
}

/** The move into the new major, as the step after the switch; journalled after each of its steps. */
async function runPostgresMajor(ctx: SwitchContext, base: JournalBase, live: Live): Promise<void> {
  const pm = base.postgresMajor
  if (!pm) return
  if (pm.state !== 'restored') {
    journalStep(ctx.cfg.stackDir, base, 'postgres-major')
    base.postgresMajor = await as('postgres-major', () =>
      moveIntoNewMajor({
        stackDir: live.cfg.stackDir,
        backupDir: base.backup ?? '',
        state: pm,
        save: (state) => journalStep(ctx.cfg.stackDir, { ...base, postgresMajor: state }, 'postgres-major'),
        log: ctx.log,
      }),
    )
    ctx.log(`PostgreSQL ${pm.to} holds the restored data; the ${pm.from} data stays in volume ${pm.aside}`)
  }
  // Everything was stopped for the move: the data stores come back before web migrates.
  await as('start the data stores', () => startDataStores(live.cfg, live.start))
}

function succeed(ctx: SwitchContext, j: UpgradeJournal, note: string): number {
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
export async function rollback(
  ctx: SwitchContext,
  j: UpgradeJournal,
  failure: string,
  requested = false,
): Promise<number> {
  const postgresMajor = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  journalStep(ctx.cfg.stackDir, { ...j, postgresMajor, failure }, 'rolling-back')
  ctx.warn(`upgrade: ${failure}; rolling back to ${j.from}`)
  const keptNewData = await undoPostgresMajor(ctx, j, failure)
  const cfg = await putFilesBack(ctx, j)
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

/** .env's tag, the checkout and the generated files as they were before the upgrade. */
async function putFilesBack(ctx: SwitchContext, j: UpgradeJournal): Promise<Config> {
  writeEnvTag(ctx.cfg, j.from)
  const cfg = withTag(reload(ctx.cfg), j.from)
  // The generated files (STACK_DIR/.env with the image tag) come from the snapshot.
  const checkoutAt = rollbackCheckout(j, hasSnapshot(cfg.stackDir))
  try {
    await prepareStack(withTag(cfg, checkoutAt), { geoip: false, log: () => {} })
  } catch (e) {
    ctx.warn(
      `could not move the PostHog checkout back to ${j.from} (${(e as Error).message}); using the saved files`,
    )
  }
  if (hasSnapshot(cfg.stackDir)) restoreSnapshot(cfg.stackDir)
  return cfg
}

/** Before a rollback starts the previous version: its PostgreSQL data back under the volume's name. */
async function undoPostgresMajor(ctx: SwitchContext, j: UpgradeJournal, failure: string): Promise<string> {
  const pm = readJournal(ctx.cfg.stackDir)?.postgresMajor ?? j.postgresMajor
  if (!pm) return ''
  try {
    const done = await undoMove({
      stackDir: ctx.cfg.stackDir,
      backupDir: j.backup ?? '',
      state: pm,
      save: (state) => journalStep(ctx.cfg.stackDir, { ...j, failure, postgresMajor: state }, 'rolling-back'),
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
