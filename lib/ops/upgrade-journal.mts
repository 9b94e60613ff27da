// The on-disk state of an upgrade: the crash journal (STACK_DIR/upgrade.state.json) and what a
// re-run does with it, the snapshot of the live files a rollback puts back, and the upgrades.log
// line each upgrade ends with.
import fs from 'node:fs'
import path from 'node:path'
import { UsageError } from '../core/cli.mts'
import { readIfExists, writeFileAtomic } from '../core/fs.mts'

// ---------------------------------------------------------------------------------------------
// Journal: a kill -9 at any point leaves STACK_DIR/upgrade.state.json, and the next run knows
// from its step whether the live stack was touched.

export const JOURNAL_FILE = 'upgrade.state.json'
export const SNAPSHOT_DIR = '.upgrade-previous'
export const STAGING_DIR = '.upgrade-staging'
export const UPGRADES_LOG = 'upgrades.log'

/** In order. Up to `pulled` the live STACK_DIR and .env are untouched. */
export const STEPS = [
  'staging',
  'backup',
  'pulled',
  'switching',
  'postgres-major',
  'migrating',
  'starting',
  'rolling-back',
] as const
export type UpgradeStep = (typeof STEPS)[number]

export interface UpgradeJournal {
  version: 1
  from: string
  to: string
  fromCommit?: string
  step: UpgradeStep
  backup?: string
  startedAt: string
  /** What failed, once a rollback has begun. */
  failure?: string
  /** A PostgreSQL major upgrade: where the data is and how far moving it has come. */
  postgresMajor?: PostgresMajorState
}

/** The data's journey into a new PostgreSQL major, journalled after every step (lib/ops/pg-major.mts). */
export interface PostgresMajorState {
  from: string
  to: string
  /** The db service's named volume (`posthog_postgres-data`) and where its old content is kept. */
  volume: string
  aside: string
  /** The image the copies run in (the new db image: pulled, has sh, cp and find). */
  image: string
  /** planned -> copied (aside holds a full copy) -> moved (volume removed) -> restored (new db holds the data). */
  state: 'planned' | 'copied' | 'moved' | 'restored'
  /** During a rollback: the new major's data moved aside (`new-aside`), the old put back (`old-back`). */
  rollback?: 'new-aside' | 'old-back'
  /** Where the rollback keeps the new major's data. */
  newAside?: string
}

export function journalPath(stackDir: string): string {
  return path.join(stackDir, JOURNAL_FILE)
}

export function readJournal(stackDir: string): UpgradeJournal | undefined {
  const text = readIfExists(journalPath(stackDir))
  if (text === undefined) return undefined
  try {
    const j = JSON.parse(text) as UpgradeJournal
    return j &&
      j.version === 1 &&
      STEPS.includes(j.step) &&
      typeof j.from === 'string' &&
      typeof j.to === 'string'
      ? j
      : undefined
  } catch {
    return undefined
  }
}

export function writeJournal(stackDir: string, journal: UpgradeJournal): void {
  writeFileAtomic(journalPath(stackDir), `${JSON.stringify(journal, null, 2)}\n`, { mode: 0o600 })
}

/** The journal without its step. */
export type JournalBase = Omit<UpgradeJournal, 'step' | 'version'>

/** Records that the upgrade reached `step`; returns the journal written. */
export function journalStep(stackDir: string, base: JournalBase, step: UpgradeStep): UpgradeJournal {
  const journal: UpgradeJournal = { version: 1, ...base, step }
  writeJournal(stackDir, journal)
  return journal
}

export function clearJournal(stackDir: string): void {
  fs.rmSync(journalPath(stackDir), { force: true })
}

export type Recovery = 'discard' | 'resume' | 'rollback'

/**
 * What a re-run does with a journal left by an interrupted upgrade: before the switch nothing
 * live changed (discard the staging and start over); after it, finish the upgrade (every
 * remaining step is safe to repeat), or, with --rollback or when a rollback had begun, roll back.
 */
export function recoveryFor(journal: UpgradeJournal, wantRollback: boolean): Recovery {
  const index = STEPS.indexOf(journal.step)
  if (index < STEPS.indexOf('switching')) return 'discard'
  if (journal.step === 'rolling-back' || wantRollback) return 'rollback'
  return 'resume'
}

/** What this run does about an interrupted upgrade, and with which words. */
export type Resumption =
  /** Nothing live changed: its leftovers go; then a new upgrade when --to was given. */
  | { action: 'discard'; detail: string; thenUpgrade: boolean }
  /** The remaining steps run again; the note goes into upgrades.log. */
  | { action: 'resume'; note: string }
  /** The previous version comes back; `requested`: --rollback asked for it and nothing had failed (exit 0). */
  | { action: 'rollback'; failure: string; requested: boolean }

/**
 * The decision of a run that finds a journal (recoveryFor), with what it says. A --to naming
 * another target is refused unless the interrupted upgrade never touched the live stack.
 */
export function resumption(journal: UpgradeJournal, ask: { to?: string; rollback: boolean }): Resumption {
  const action = recoveryFor(journal, ask.rollback)
  if (ask.to && ask.to !== journal.to && action !== 'discard')
    throw new UsageError(
      `an upgrade ${journal.from} -> ${journal.to} was interrupted (step ${journal.step}): run upgrade without --to to finish it, or with --rollback`,
    )
  if (action === 'discard')
    return {
      action,
      detail: `interrupted at ${journal.step}, before anything live changed`,
      thenUpgrade: Boolean(ask.to),
    }
  if (action === 'resume') return { action, note: `resumed after an interruption at ${journal.step}` }
  return {
    action,
    failure: journal.failure ?? `interrupted at ${journal.step}, rolled back on request`,
    requested: ask.rollback && !journal.failure,
  }
}

/**
 * The commit a rollback moves the checkout back to: the exact one the upgrade started from (a
 * branch such as `latest` may have moved on since), when the snapshot holds the files generated
 * for it; otherwise the previous tag.
 */
export function rollbackCheckout(journal: UpgradeJournal, snapshotTaken: boolean): string {
  return journal.fromCommit && snapshotTaken ? journal.fromCommit : journal.from
}

// ---------------------------------------------------------------------------------------------
// upgrades.log: one line per upgrade, appended, never rewritten.

export interface LogEntry {
  time: Date
  from: string
  to: string
  result: 'ok' | 'rolled-back' | 'failed' | 'discarded'
  detail?: string
}

export function upgradeLogLine(e: LogEntry): string {
  const detail = e.detail ? `\t${e.detail.replace(/\s+/g, ' ')}` : ''
  return `${e.time.toISOString()}\tfrom=${e.from}\tto=${e.to}\tresult=${e.result}${detail}\n`
}

export function appendUpgradeLog(stackDir: string, e: LogEntry): void {
  fs.mkdirSync(stackDir, { recursive: true })
  fs.appendFileSync(path.join(stackDir, UPGRADES_LOG), upgradeLogLine(e))
}

/** Ends an upgrade for good: staging and snapshot removed, its line in upgrades.log, no journal left. */
export function closeUpgrade(stackDir: string, entry: Omit<LogEntry, 'time'>, time = new Date()): void {
  fs.rmSync(path.join(stackDir, STAGING_DIR), { recursive: true, force: true })
  fs.rmSync(path.join(stackDir, SNAPSHOT_DIR), { recursive: true, force: true })
  appendUpgradeLog(stackDir, { time, ...entry })
  clearJournal(stackDir)
}

// ---------------------------------------------------------------------------------------------
// Snapshot of the live generated files, for a byte-exact rollback. The PostHog checkout and
// share/ are not copied: prepare moves the checkout back to the previous tag.

const SNAPSHOT_SKIP = new Set([
  'posthog',
  'share',
  SNAPSHOT_DIR,
  STAGING_DIR,
  '.lock',
  JOURNAL_FILE,
  UPGRADES_LOG,
])

/** Relative paths of the files under STACK_DIR that a rollback puts back (top level and compose/). */
export function snapshotFiles(stackDir: string): string[] {
  const out: string[] = []
  for (const entry of fs.readdirSync(stackDir, { withFileTypes: true })) {
    if (SNAPSHOT_SKIP.has(entry.name) || entry.name.startsWith('.upgrade')) continue
    if (entry.isFile()) out.push(entry.name)
    else if (entry.isDirectory() && entry.name === 'compose')
      for (const f of fs.readdirSync(path.join(stackDir, 'compose'), { withFileTypes: true }))
        if (f.isFile()) out.push(`compose/${f.name}`)
  }
  return out.sort()
}

/** Copies the live files (and the user's .env as `env`) into STACK_DIR/.upgrade-previous/. */
export function takeSnapshot(stackDir: string, envFile: string): void {
  const dest = path.join(stackDir, SNAPSHOT_DIR)
  fs.rmSync(dest, { recursive: true, force: true })
  fs.mkdirSync(path.join(dest, 'files'), { recursive: true, mode: 0o700 })
  for (const rel of snapshotFiles(stackDir)) {
    const target = path.join(dest, 'files', rel)
    fs.mkdirSync(path.dirname(target), { recursive: true })
    fs.copyFileSync(path.join(stackDir, rel), target)
    fs.chmodSync(target, fs.statSync(path.join(stackDir, rel)).mode & 0o777)
  }
  fs.copyFileSync(envFile, path.join(dest, 'env'))
  fs.chmodSync(path.join(dest, 'env'), 0o600)
  fs.writeFileSync(path.join(dest, 'complete'), '')
}

export function hasSnapshot(stackDir: string): boolean {
  return fs.existsSync(path.join(stackDir, SNAPSHOT_DIR, 'complete'))
}

/** Puts the snapshot's files back byte for byte and removes files the new version added. */
export function restoreSnapshot(stackDir: string): void {
  const src = path.join(stackDir, SNAPSHOT_DIR, 'files')
  const saved = new Set(listRelative(src))
  for (const rel of snapshotFiles(stackDir))
    if (!saved.has(rel)) fs.rmSync(path.join(stackDir, rel), { force: true })
  for (const rel of saved) {
    const from = path.join(src, rel)
    writeFileAtomic(path.join(stackDir, rel), fs.readFileSync(from), { mode: fs.statSync(from).mode & 0o777 })
  }
}

/** The user's .env as it was before the upgrade. */
export function snapshotEnvText(stackDir: string): string | undefined {
  return readIfExists(path.join(stackDir, SNAPSHOT_DIR, 'env'))
}

function listRelative(dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = rel ? `${rel}/${e.name}` : e.name
    if (e.isDirectory()) out.push(...listRelative(dir, child))
    else if (e.isFile()) out.push(child)
  }
  return out
}
