// The steps of an upgrade before the switch: pre-flight checks, the target prepared in a staging
// folder, its plan (services, images, data-store majors), the PostgreSQL major move it needs, and
// the image pull. Nothing here changes the live stack or .env.
import fs from 'node:fs'
import path from 'node:path'
import { retry } from 'zx'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { minFreeDiskBytes } from '../core/disk.mts'
import { compose } from '../core/docker.mts'
import { type Config, loadConfig, parseEnvText } from '../core/env.mts'
import { readIfExists } from '../core/fs.mts'
import { describeProbe, healthUrl, isHealthy, pollHealth } from '../core/health.mts'
import { assertSecretsUnchanged } from '../core/secrets.mts'
import { isFrozenBranch } from '../stack/posthog-version.mts'
import { type PrepareResult, prepareStack } from '../stack/prepare.mts'
import { displayPath } from './backup.mts'
import { asideVolumeName, dbVolume } from './pg-major.mts'
import {
  composeImages,
  composeServiceNames,
  effectiveImages,
  type MajorChange,
  majorChanges,
  serviceDiff,
  servicesToStop,
  type UpgradePlan,
} from './upgrade.mts'
import type { PostgresMajorState } from './upgrade-journal.mts'

const GiB = 1024 ** 3
const quiet = () => {}

/** The configuration at another tag (and, for staging, another STACK_DIR). */
export function withTag(cfg: Config, tag: string, stackDir = cfg.stackDir): Config {
  return {
    ...cfg,
    appTag: tag,
    stackDir,
    raw: { ...cfg.raw, POSTHOG_APP_TAG: tag, STACK_DIR: stackDir },
  }
}

/** The configuration as .env says now (after the upgrade changed its tag). */
export function reload(cfg: Config): Config {
  return loadConfig({ root: cfg.root, envFile: cfg.envFile })
}

export function readStackFile(dir: string, name: string): string | undefined {
  return readIfExists(path.join(dir, name))
}

function freeBytes(dir: string): number {
  let probe = path.resolve(dir)
  while (!fs.existsSync(probe) && path.dirname(probe) !== probe) probe = path.dirname(probe)
  const st = fs.statfsSync(probe)
  return st.bavail * st.bsize
}

export interface PreflightProblem {
  text: string
  /** --force upgrades anyway. */
  forcible: boolean
}

/**
 * What speaks against upgrading now: too little free disk for the stack and the backup, and an
 * unhealthy PostHog (forcible). The current version as target and changed secrets are bad input.
 */
export async function preflight(cfg: Config, to: string, minFreeDisk?: string): Promise<PreflightProblem[]> {
  const problems: PreflightProblem[] = []
  const need = minFreeDiskBytes(minFreeDisk, false)
  const backupDir = path.resolve(cfg.root, cfg.raw.BACKUP_DIR ?? 'backups')
  for (const dir of new Set([cfg.stackDir, backupDir])) {
    const free = freeBytes(dir)
    if (free < need)
      problems.push({
        text: `only ${(free / GiB).toFixed(1)} GB free for ${displayPath(dir)}, ${(need / GiB).toFixed(0)} GB needed; free some disk (docker system prune) or lower --min-free-disk`,
        forcible: false,
      })
  }
  // A frozen branch (latest) is resolved again: that is how it moves on.
  if (to === cfg.appTag && !isFrozenBranch(cfg.stackDir, to))
    throw new UsageError(`PostHog is already at ${to} (POSTHOG_APP_TAG in ${cfg.envFile})`)
  assertSecretsUnchanged(cfg, false)
  const now = await pollHealth({ url: healthUrl(cfg.proxyPort), timeoutMs: 3000 })
  if (!isHealthy(now.last))
    problems.push({
      text: `PostHog is not healthy now (/_health: ${describeProbe(now.last)}); fix it first (npx tsx scripts/up.mts), or pass --force`,
      forcible: true,
    })
  return problems
}

/** Prepares the target's files in `staging`; a target that cannot be prepared leaves nothing behind. */
export async function stage(cfg: Config, to: string, staging: string): Promise<PrepareResult> {
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

export interface PlanInput {
  to: string
  staging: string
  prepared: PrepareResult
  fromCommit?: string
  postgresMajor: boolean
  clickhouse: boolean
}

/** The plan of moving the live stack to the staged target. */
export function buildPlan(cfg: Config, p: PlanInput): UpgradePlan {
  const liveCompose = readStackFile(cfg.stackDir, 'docker-compose.yml')
  const newCompose = readStackFile(p.staging, 'docker-compose.yml')
  const newBase = readStackFile(p.staging, 'docker-compose.base.yml')
  const stagingEnv = parseEnvText(readStackFile(p.staging, '.env') ?? '')
  // The staged env file holds the image tags the pull uses (a frozen branch: its commit).
  const env = { ...cfg.raw, POSTHOG_APP_TAG: p.to, ...stagingEnv }
  return {
    from: cfg.appTag,
    to: p.to,
    fromCommit: p.fromCommit,
    toCommit: p.prepared.commit,
    ...serviceDiff(composeServiceNames(liveCompose), composeServiceNames(newCompose)),
    images: composeImages(newCompose, newBase, env, p.prepared.disabledServices),
    stop: servicesToStop(newCompose, newBase).filter((s) => p.prepared.enabledServices.includes(s)),
    majors: dataStoreChanges(cfg, p.to, p.staging),
    postgresMajor: p.postgresMajor,
    clickhouseBackup: p.clickhouse,
  }
}

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
 * without --postgres-major (`wanted`). With it, what the move needs: the db volume and where to
 * keep it.
 */
export function postgresMajorPlan(
  stackDir: string,
  plan: Pick<UpgradePlan, 'majors' | 'to'>,
  wanted: boolean,
  log: (line: string) => void,
): PostgresMajorState | undefined {
  const pg = plan.majors?.find((m) => m.engine === 'PostgreSQL')
  if (!pg) {
    if (wanted) log('--postgres-major: PostgreSQL keeps its major version; there is nothing to move')
    return undefined
  }
  const what = `PostgreSQL ${pg.from ?? '?'} -> ${pg.to ?? '?'} (db: ${pg.fromImage} -> ${pg.toImage})`
  if (pg.kind === 'downgrade')
    throw new UsageError(
      `${what} is a downgrade, which the data does not survive; pick a target with the same or a newer PostgreSQL`,
    )
  if (pg.kind === 'unknown' && !wanted) return undefined // the plan says to check; --postgres-major moves anyway
  if (!wanted)
    throw new UsageError(
      `${what} is a major upgrade: the new server cannot read the old data. Run upgrade --to ${plan.to} --postgres-major ` +
        '(it backs up every database, keeps the old volume aside and restores into the new major; docs/operations.md: Upgrade)',
    )
  const volume = dbVolume(readStackFile(stackDir, 'docker-compose.yml') ?? '')
  if (!volume)
    throw new UsageError(
      'the db service keeps its data in a bind mount, not a named volume: move it into the new major yourself (dump, new directory, restore)',
    )
  const from = pg.from ?? 'old'
  const aside = asideVolumeName(volume, from)
  return { from, to: pg.to ?? 'new', volume, aside, image: pg.toImage, state: 'planned' }
}

/** Attempts of `docker compose pull` (registries fail now and then). */
export const PULL_ATTEMPTS = 3

export interface PullOptions {
  /** Retry n waits n times this. */
  backoffMs: number
  log: (line: string) => void
  /** The compose runner (a stand-in in tests). */
  compose?: typeof compose
}

/** zx retry's delays: retry n waits n × `stepMs`; nothing after the last attempt. */
function* linearBackoff(stepMs: number, retries: number): Generator<number> {
  for (let n = 1; n <= retries; n++) yield stepMs * n
  yield 0
}

/** Pulls the staged target's images; throws the last line docker wrote after the last attempt. */
export async function pullImages(staging: string, services: string[], o: PullOptions): Promise<void> {
  const run = o.compose ?? compose
  let attempt = 0
  await retry(PULL_ATTEMPTS, linearBackoff(o.backoffMs, PULL_ATTEMPTS - 1), async () => {
    attempt++
    const out = await run(staging, ['pull', ...services], { timeout: '60m', nothrow: true })
    if (out.ok) return
    const why =
      `${out.stderr}\n${out.stdout}`.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${out.exitCode}`
    if (attempt < PULL_ATTEMPTS)
      o.log(`image pull failed (${why}); retry ${attempt} of ${PULL_ATTEMPTS - 1} shortly`)
    throw new Error(why)
  })
}
