// The entry of an upgrade, a journalled state machine: a journal an interrupted run left is
// discarded, finished or rolled back (upgrade-journal.mts decides which); a fresh upgrade checks,
// stages the target, prints its plan, backs up and pulls (upgrade-stage.mts: a failure up to here
// changes nothing live), then switches (upgrade-switch.mts, which rolls back when a step fails).
// A new PostgreSQL major is refused unless asked to move the data (pg-major.mts).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { type Config, isGitRefName } from '../core/env.mts'
import type { PrepareResult } from '../stack/prepare.mts'
import { checkoutCommit, displayPath, takeBackup } from './backup.mts'
import { formatPlan } from './upgrade.mts'
import {
  closeUpgrade,
  journalStep,
  type PostgresMajorState,
  readJournal,
  resumption,
  STAGING_DIR,
  takeSnapshot,
  type UpgradeJournal,
} from './upgrade-journal.mts'
import {
  buildPlan,
  type PlanInput,
  type PreflightProblem,
  postgresMajorPlan,
  preflight,
  pullImages,
  reload,
  stage,
} from './upgrade-stage.mts'
import { afterSwitch, rollback, type SwitchContext } from './upgrade-switch.mts'

export interface UpgradeRequest extends Omit<SwitchContext, 'cfg'> {
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
  /** --min-free-disk in GB as given; undefined: the default. */
  minFreeDisk?: string
}

type Context = UpgradeRequest & SwitchContext

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
async function orClose<T>(
  ctx: Context,
  to: string,
  detail: (e: Error) => string,
  step: () => T | Promise<T>,
): Promise<T> {
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
  if (ctx.dryRun) return dryRun(ctx, to, problems)
  refuseOrForce(ctx, problems)
  const base = {
    from: cfg.appTag,
    to,
    fromCommit: await checkoutCommit(cfg.stackDir),
    startedAt: new Date().toISOString(),
  }
  journalStep(cfg.stackDir, base, 'staging')
  const staged = await stageTarget(ctx, base)
  if (!staged) return 0
  journalStep(cfg.stackDir, base, 'backup')
  const backup = await backUp(ctx, to, staged.postgresMajor !== undefined)
  await pull(ctx, to, staged.prepared.enabledServices, backup)
  const pulled = journalStep(cfg.stackDir, { ...base, backup, postgresMajor: staged.postgresMajor }, 'pulled')
  takeSnapshot(cfg.stackDir, cfg.envFile)
  ctx.log(`switching the live files and POSTHOG_APP_TAG to ${to}`)
  return afterSwitch(ctx, pulled)
}

/** Refuses (exit 1) on what pre-flight found, but what --force overrides. */
function refuseOrForce(ctx: Context, problems: PreflightProblem[]): void {
  const blocking = problems.filter((p) => !(ctx.force && p.forcible)).map((p) => p.text)
  if (blocking.length) {
    for (const p of blocking.slice(1)) ctx.warn(`upgrade: pre-flight: ${p}`)
    throw new RuntimeFailure(`pre-flight: ${blocking[0]}`)
  }
  for (const p of problems) ctx.warn(`pre-flight (forced): ${p.text}`)
}

const stagingOf = (cfg: Config) => path.join(cfg.stackDir, STAGING_DIR)

/**
 * The target prepared in the staging folder and its plan printed; undefined when a moving
 * branch has nothing newer. Refuses what the configuration or the data cannot take.
 */
async function stageTarget(
  ctx: Context,
  base: Pick<UpgradeJournal, 'from' | 'to' | 'fromCommit'>,
): Promise<{ prepared: PrepareResult; postgresMajor?: PostgresMajorState } | undefined> {
  const { cfg } = ctx
  const { to, fromCommit } = base
  const prepared = await orClose(
    ctx,
    to,
    (e) => e.message,
    () => stage(cfg, to, stagingOf(cfg)),
  )
  if (to === cfg.appTag && prepared.commit === fromCommit) {
    closeUpgrade(cfg.stackDir, { from: base.from, to, result: 'discarded', detail: 'already at that commit' })
    ctx.log(
      `PostHog ${to} is already at its newest installable commit ${prepared.commit.slice(0, 12)}; nothing to do`,
    )
    return undefined
  }
  // A compose file the configuration cannot run (a required variable left empty) is refused too.
  const refused = (e: Error) => `refused: ${e.message}`
  const plan = await orClose(ctx, to, refused, () =>
    buildPlan(cfg, { ...planOptions(ctx, to, stagingOf(cfg), prepared), fromCommit }),
  )
  ctx.log(formatPlan(plan))
  const postgresMajor = await orClose(ctx, to, refused, () =>
    postgresMajorPlan(cfg.stackDir, plan, ctx.postgresMajor, ctx.log),
  )
  return { prepared, postgresMajor }
}

/** The backup before anything changes (every database when PostgreSQL moves to a new major). */
async function backUp(ctx: Context, to: string, allDatabases: boolean): Promise<string> {
  ctx.log('backing up before anything changes')
  const { dir } = await orClose(
    ctx,
    to,
    (e) => `backup failed: ${e.message}`,
    () => takeBackup(ctx.cfg, { log: ctx.log, clickhouse: ctx.clickhouse, allDatabases }),
  )
  ctx.log(`backup written: ${displayPath(dir)}`)
  return dir
}

async function pull(ctx: Context, to: string, services: string[], backup: string): Promise<void> {
  ctx.log(`pulling the images of ${services.length} services`)
  const options = { backoffMs: ctx.retryBackoffMs, log: ctx.log }
  try {
    await orClose(
      ctx,
      to,
      (e) => `pull failed: ${e.message}`,
      () => pullImages(stagingOf(ctx.cfg), services, options),
    )
  } catch (e) {
    throw new RuntimeFailure(
      `pulling the images of PostHog ${to} failed: ${(e as Error).message}; nothing was changed`,
      `check the network and run upgrade again (backup: ${displayPath(backup)})`,
    )
  }
}
