// Backups of what cannot be regenerated (.env and PostgreSQL, optionally ClickHouse): folder
// naming, the manifest that proves a backup is whole (sizes + SHA-256), retention that never
// touches a folder it did not write, and one whole backup (the dump itself: postgres.mts).
//
// A backup is written into BACKUP_DIR/<name>.partial/ (its first file a marker naming the run)
// and renamed to BACKUP_DIR/<name>/ once its manifest is written: a run killed at any point
// leaves a folder the next backup recognises as incomplete and removes.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { composePrefix, dockerBin } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { type Duration, run } from '../core/exec.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { secretFingerprints } from '../core/secrets.mts'
import { dumpPostgres, otherDatabases, stderrLine } from './postgres.mts'

export const MANIFEST = 'manifest.json'
export const MANIFEST_FORMAT = 'posthog-homelab-backup/1'
export const PG_DUMP_FILE = 'postgres.dump'
export const ENV_COPY = '.env'
/** Folder names this toolkit writes: `20261125T163411Z`, or `...Z-2` when two land in one second. */
export const BACKUP_NAME = /^\d{8}T\d{6}Z(-\d+)?$/
/** A backup still being written (or killed while it was): `<name>.partial`. */
export const PARTIAL_SUFFIX = '.partial'
const PARTIAL_NAME = /^(\d{8}T\d{6}Z(?:-\d+)?)\.partial$/
/** The first file of a partial folder: proof that this toolkit made it. */
export const PARTIAL_MARKER = '.backup-in-progress.json'
/** Dumps of the other databases on the server (Temporal's), when a backup takes them: `postgres-<db>.dump`. */
export const EXTRA_DUMP = (db: string) => `postgres-${db}.dump`

export interface ManifestFile {
  name: string
  size: number
  sha256: string
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT
  createdAt: string
  posthogTag: string
  /** Commit the checkout in STACK_DIR/posthog resolved to, when there is one. */
  posthogCommit?: string
  toolkitVersion: string
  /** SHA-256 of each guarded secret (lib/core/env GUARDED_SECRETS): the data is readable only with these. */
  secretFingerprints: Record<string, string>
  files: ManifestFile[]
  clickhouse?: { folder: string }
  /** Databases besides `posthog` dumped into EXTRA_DUMP(name) (a backup before a PostgreSQL major upgrade). */
  extraDatabases?: string[]
}

export interface BackupSettings {
  backupDir: string
  keep: number
}

export function backupSettings(cfg: Config): BackupSettings {
  return {
    backupDir: path.resolve(cfg.root, cfg.raw.BACKUP_DIR ?? 'backups'),
    keep: Number(cfg.raw.BACKUP_KEEP ?? '7'),
  }
}

/** A fresh folder name under `backupDir` for a backup taken at `date`. */
export function newBackupName(backupDir: string, date = new Date()): string {
  const base = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
  const taken = (n: string) =>
    fs.existsSync(path.join(backupDir, n)) || fs.existsSync(path.join(backupDir, `${n}${PARTIAL_SUFFIX}`))
  let name = base
  for (let i = 2; taken(name); i++) name = `${base}-${i}`
  return name
}

// ---------------------------------------------------------------------------------------------
// Manifest

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Every regular file under `dir` (relative, `/`-separated, sorted), except the manifest and the marker. */
export function listFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name
      if (entry.isDirectory()) walk(child)
      else if (entry.isFile() && child !== MANIFEST && child !== PARTIAL_MARKER) out.push(child)
    }
  }
  walk('')
  return out.sort()
}

export async function describeFiles(dir: string): Promise<ManifestFile[]> {
  const files: ManifestFile[] = []
  for (const name of listFiles(dir)) {
    const full = path.join(dir, name)
    files.push({ name, size: fs.statSync(full).size, sha256: await sha256File(full) })
  }
  return files
}

export function toolkitVersion(root: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version?: string })
      .version!
  } catch {
    return 'unknown'
  }
}

export interface ManifestInput {
  cfg: Config
  files: ManifestFile[]
  createdAt: Date
  posthogCommit?: string
  clickhouseFolder?: string
  extraDatabases?: string[]
}

export function buildManifest(input: ManifestInput): BackupManifest {
  return {
    format: MANIFEST_FORMAT,
    createdAt: input.createdAt.toISOString(),
    posthogTag: input.cfg.appTag,
    ...(input.posthogCommit ? { posthogCommit: input.posthogCommit } : {}),
    toolkitVersion: toolkitVersion(input.cfg.root),
    secretFingerprints: secretFingerprints(input.cfg),
    files: input.files,
    ...(input.clickhouseFolder ? { clickhouse: { folder: input.clickhouseFolder } } : {}),
    ...(input.extraDatabases?.length ? { extraDatabases: input.extraDatabases } : {}),
  }
}

function isManifest(value: unknown): value is BackupManifest {
  const m = value as BackupManifest
  return (
    !!m &&
    m.format === MANIFEST_FORMAT &&
    typeof m.createdAt === 'string' &&
    typeof m.posthogTag === 'string' &&
    typeof m.secretFingerprints === 'object' &&
    Array.isArray(m.files) &&
    m.files.every(
      (f) => typeof f.name === 'string' && typeof f.size === 'number' && /^[0-9a-f]{64}$/.test(f.sha256),
    )
  )
}

/** The folder's manifest, or undefined when it has none or it is not one of ours. */
export function readManifest(dir: string): BackupManifest | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST), 'utf8'))
    return isManifest(parsed) ? parsed : undefined
  } catch {
    return undefined
  }
}

/** Problems found by re-hashing every file the manifest lists; an empty list means the backup is whole. */
export async function verifyBackup(dir: string): Promise<string[]> {
  const manifest = readManifest(dir)
  if (!manifest) return [`${path.join(dir, MANIFEST)} is missing or not a backup manifest`]
  const problems: string[] = []
  for (const f of manifest.files) {
    const full = path.join(dir, f.name)
    if (path.relative(dir, full).startsWith('..')) problems.push(`${f.name} points outside the backup`)
    else if (!fs.existsSync(full)) problems.push(`${f.name} is missing`)
    else if (fs.statSync(full).size !== f.size) problems.push(`${f.name} has the wrong size`)
    else if ((await sha256File(full)) !== f.sha256) problems.push(`${f.name} does not match its SHA-256`)
  }
  if (!manifest.files.some((f) => f.name === PG_DUMP_FILE))
    problems.push(`the manifest lists no ${PG_DUMP_FILE}`)
  return problems
}

// ---------------------------------------------------------------------------------------------
// Listing and retention

export interface BackupEntry {
  name: string
  dir: string
  manifest: BackupManifest
}

/** Backups this toolkit wrote (a valid manifest), oldest first. Anything else in the folder is left alone. */
export function listBackups(backupDir: string): BackupEntry[] {
  let names: string[]
  try {
    names = fs.readdirSync(backupDir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw e
  }
  const entries: BackupEntry[] = []
  for (const name of names) {
    const dir = path.join(backupDir, name)
    if (!fs.statSync(dir).isDirectory()) continue
    const manifest = readManifest(dir)
    if (manifest) entries.push({ name, dir, manifest })
  }
  return entries.sort(
    (a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.name.localeCompare(b.name),
  )
}

/** Names to delete so that the newest `keep` backups (by manifest time) remain. Pure. */
export function retentionVictims(entries: Pick<BackupEntry, 'name' | 'manifest'>[], keep: number): string[] {
  const sorted = [...entries].sort(
    (a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.name.localeCompare(b.name),
  )
  return sorted.slice(0, Math.max(0, sorted.length - keep)).map((e) => e.name)
}

/** Deletes the oldest backups beyond `keep`; folders without a valid manifest are never touched. */
export function applyRetention(backupDir: string, keep: number): string[] {
  const entries = listBackups(backupDir)
  const victims = retentionVictims(entries, keep)
  for (const name of victims) {
    fs.rmSync(path.join(backupDir, name), { recursive: true, force: true })
    // The ClickHouse part lives beside it (the container's /backups mount); only ours is removed.
    const chFolder = path.join(backupDir, 'clickhouse', name)
    if (entries.find((e) => e.name === name)?.manifest.clickhouse?.folder === chFolder)
      fs.rmSync(chFolder, { recursive: true, force: true })
  }
  return victims
}

// ---------------------------------------------------------------------------------------------
// Incomplete backups: what a run killed midway (pg_dump interrupted, SIGKILL, power cut) leaves.

interface PartialMarker {
  format: typeof MANIFEST_FORMAT
  startedAt: string
  pid: number
  /** Set once ClickHouse was asked to write its part there. */
  clickhouseFolder?: string
}

export interface IncompleteBackup {
  name: string
  dir: string
  /** The ClickHouse part that run had begun, under BACKUP_DIR/clickhouse/. */
  clickhouseFolder?: string
}

function readMarker(dir: string): PartialMarker | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, PARTIAL_MARKER), 'utf8')) as PartialMarker
    return m && m.format === MANIFEST_FORMAT ? m : undefined
  } catch {
    return undefined
  }
}

function writeMarker(dir: string, marker: PartialMarker): void {
  writeFileAtomic(path.join(dir, PARTIAL_MARKER), `${JSON.stringify(marker)}\n`, { mode: 0o600 })
}

/**
 * `<name>.partial` folders a killed run left: ones holding our marker or our manifest, or empty
 * (killed between creating the folder and writing the marker). Anything else is not ours and is
 * never listed. Backups run under the stack lock, so none of these is still being written.
 */
export function findIncomplete(backupDir: string): IncompleteBackup[] {
  let names: string[]
  try {
    names = fs.readdirSync(backupDir).sort()
  } catch {
    return []
  }
  const found: IncompleteBackup[] = []
  for (const entry of names) {
    const m = PARTIAL_NAME.exec(entry)
    const dir = path.join(backupDir, entry)
    if (!m || !fs.lstatSync(dir).isDirectory()) continue
    const marker = readMarker(dir)
    const ours = marker || readManifest(dir) || fs.readdirSync(dir).length === 0
    if (!ours) continue
    const chFolder = path.join(backupDir, 'clickhouse', m[1]!)
    found.push({
      name: m[1]!,
      dir,
      ...(marker?.clickhouseFolder === chFolder ? { clickhouseFolder: chFolder } : {}),
    })
  }
  return found
}

/**
 * Removes what killed runs left, one line each; a part that cannot be removed (ClickHouse files
 * owned by the container's uid 101) is reported with what to do, never a reason to fail.
 */
export function removeIncomplete(backupDir: string, log: (line: string) => void): string[] {
  const removed: string[] = []
  for (const b of findIncomplete(backupDir)) {
    try {
      fs.rmSync(b.dir, { recursive: true, force: true })
      removed.push(b.name)
      log(`removed an incomplete backup left by an interrupted run: ${displayPath(b.dir)}`)
    } catch (e) {
      log(`could not remove the incomplete backup ${b.dir} (${firstLine(e)}); remove it by hand`)
      continue
    }
    if (b.clickhouseFolder) removeClickhousePart(b.clickhouseFolder, log)
  }
  return removed
}

function removeClickhousePart(folder: string, log: (line: string) => void): void {
  try {
    fs.rmSync(folder, { recursive: true, force: true })
  } catch (e) {
    log(
      `could not remove the unfinished ClickHouse part ${folder} (${firstLine(e)}); its files belong to the container's user: sudo rm -r ${folder}`,
    )
  }
}

function firstLine(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0]!
}

/** `--from`: a folder path, a folder name under BACKUP_DIR, or (undefined) the newest backup. */
export function resolveBackup(backupDir: string, from: string | undefined): string {
  if (!from) {
    const newest = listBackups(backupDir).at(-1)
    if (!newest)
      throw new UsageError(`no backup in ${backupDir}: take one with 'npx tsx scripts/backup.mts' first`)
    return newest.dir
  }
  const candidates = [path.resolve(from), path.join(backupDir, from)]
  const dir = candidates.find((c) => fs.existsSync(path.join(c, MANIFEST)))
  if (!dir) {
    const partial = candidates.find((c) => PARTIAL_NAME.test(path.basename(c)) && fs.existsSync(c))
    if (partial)
      throw new UsageError(
        `'${from}' is an incomplete backup (its run was interrupted); pick a complete one (the next backup removes it)`,
      )
    throw new UsageError(`no backup at '${from}' (looked for ${MANIFEST} in ${candidates.join(' and ')})`)
  }
  return dir
}

/** The commit STACK_DIR/posthog is checked out at, or undefined when there is no checkout. */
export async function checkoutCommit(stackDir: string): Promise<string | undefined> {
  const repo = path.join(stackDir, 'posthog')
  if (!fs.existsSync(path.join(repo, '.git'))) return undefined
  const res = await run('git', ['-C', repo, 'rev-parse', 'HEAD'], { nothrow: true, timeout: '10s' })
  return res.ok && /^[0-9a-f]{40}$/.test(res.stdout.trim()) ? res.stdout.trim() : undefined
}

// ---------------------------------------------------------------------------------------------
// ClickHouse (opt-in): its native BACKUP writes into a folder mounted at /backups in the
// clickhouse container, which the server must allow (see docs/operations.md, "ClickHouse backups").

export const CLICKHOUSE_MOUNT = '/backups'

export function clickhouseBackupQuery(name: string): string {
  if (!BACKUP_NAME.test(name)) throw new UsageError(`'${name}' is not a backup folder name`)
  return `BACKUP DATABASE posthog TO File('${CLICKHOUSE_MOUNT}/${name}/')`
}

export async function backupClickhouse(
  stackDir: string,
  name: string,
  timeout: Duration = '360m',
): Promise<void> {
  const args = [
    ...composePrefix(stackDir),
    ...['exec', '-T', 'clickhouse', 'clickhouse-client', '--query', clickhouseBackupQuery(name)],
  ]
  const res = await run(dockerBin(), args, { nothrow: true, timeout })
  if (!res.ok)
    throw new RuntimeFailure(
      `ClickHouse BACKUP failed (exit ${res.exitCode ?? res.signal}): ${stderrLine(res)}`,
      "give clickhouse a 'backups' disk mounted at /backups (docs/operations.md: ClickHouse backups), or leave out --clickhouse",
    )
}

// ---------------------------------------------------------------------------------------------
// One whole backup, shared by scripts/backup.mts and scripts/upgrade.mts.

export interface BackupOptions {
  clickhouse?: boolean
  /** Also dump every other database on the server (before a PostgreSQL major upgrade). */
  allDatabases?: boolean
  log?: (line: string) => void
  now?: Date
}

export interface BackupResult {
  dir: string
  manifest: BackupManifest
  removed: string[]
  /** Incomplete backups of interrupted runs that were removed first. */
  incomplete: string[]
}

/**
 * Takes a backup into BACKUP_DIR/<timestamp>/ (mode 0700): `.env` (0600) and the PostgreSQL
 * dump, then the manifest, then retention. It is written as <timestamp>.partial and renamed
 * when whole; a failure removes it, and what a killed run left is removed by the next one.
 */
export async function takeBackup(cfg: Config, opts: BackupOptions = {}): Promise<BackupResult> {
  const log = opts.log ?? (() => {})
  const { backupDir, keep } = backupSettings(cfg)
  const createdAt = opts.now ?? new Date()
  fs.mkdirSync(backupDir, { recursive: true, mode: 0o700 })
  const incomplete = removeIncomplete(backupDir, log)
  const name = newBackupName(backupDir, createdAt)
  const dir = path.join(backupDir, name)
  const partial = `${dir}${PARTIAL_SUFFIX}`
  const marker: PartialMarker = {
    format: MANIFEST_FORMAT,
    startedAt: new Date().toISOString(),
    pid: process.pid,
  }
  fs.mkdirSync(partial, { mode: 0o700 })
  fs.chmodSync(partial, 0o700)
  writeMarker(partial, marker)
  let clickhouseFolder: string | undefined
  try {
    fs.copyFileSync(cfg.envFile, path.join(partial, ENV_COPY))
    fs.chmodSync(path.join(partial, ENV_COPY), 0o600)
    log('dumping PostgreSQL (pg_dump -Fc) ...')
    const size = await dumpPostgres(cfg.stackDir, path.join(partial, PG_DUMP_FILE))
    log(`PostgreSQL dump: ${formatBytes(size)}`)
    const extra = opts.allDatabases ? await otherDatabases(cfg.stackDir) : []
    for (const db of extra) {
      const bytes = await dumpPostgres(cfg.stackDir, path.join(partial, EXTRA_DUMP(db)), '120m', db)
      log(`PostgreSQL dump of database ${db}: ${formatBytes(bytes)}`)
    }
    if (opts.clickhouse) {
      clickhouseFolder = path.join(backupDir, 'clickhouse', name)
      writeMarker(partial, { ...marker, clickhouseFolder })
      log('backing up ClickHouse (BACKUP DATABASE posthog) ...')
      await backupClickhouse(cfg.stackDir, name)
    }
    const manifest = buildManifest({
      cfg,
      createdAt,
      files: await describeFiles(partial),
      posthogCommit: await checkoutCommit(cfg.stackDir),
      clickhouseFolder,
      extraDatabases: extra,
    })
    writeFileAtomic(path.join(partial, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 })
    fs.rmSync(path.join(partial, PARTIAL_MARKER), { force: true })
    fs.renameSync(partial, dir)
    return { dir, manifest, removed: retainQuietly(backupDir, keep, log), incomplete }
  } catch (e) {
    fs.rmSync(partial, { recursive: true, force: true })
    if (clickhouseFolder) removeClickhousePart(clickhouseFolder, log)
    throw e
  }
}

/**
 * Retention once the new backup is whole: a failure to delete an old one (e.g. a ClickHouse part
 * owned by the container's user) is reported, never a reason to throw the new backup away.
 */
function retainQuietly(backupDir: string, keep: number, log: (line: string) => void): string[] {
  try {
    return applyRetention(backupDir, keep)
  } catch (e) {
    log(
      `the new backup is complete, but removing old ones failed (${(e as Error).message.split('\n')[0]}); remove them from ${backupDir} by hand`,
    )
    return []
  }
}

/** A path as the user would type it: relative when under the current directory, else absolute. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p)
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}
