// Backups of what cannot be regenerated (.env and PostgreSQL, optionally ClickHouse): folder
// naming, the manifest that proves a backup is whole (sizes + SHA-256), retention that never
// touches a folder it did not write, and the thin I/O that streams pg_dump into a file.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure, UsageError } from './cli.mts'
import { composePrefix, dockerBin } from './docker.mts'
import { type Config, secretFingerprints } from './env.mts'
import { type CommandResult, type Duration, run } from './exec.mts'
import { writeFileAtomic } from './fsutil.mts'

export const MANIFEST = 'manifest.json'
export const MANIFEST_FORMAT = 'posthog-homelab-backup/1'
export const PG_DUMP_FILE = 'postgres.dump'
export const ENV_COPY = '.env'
/** Folder names this toolkit writes: `20261125T163411Z`, or `...Z-2` when two land in one second. */
export const BACKUP_NAME = /^\d{8}T\d{6}Z(-\d+)?$/

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
  /** SHA-256 of each guarded secret (lib/env GUARDED_SECRETS): the data is readable only with these. */
  secretFingerprints: Record<string, string>
  files: ManifestFile[]
  clickhouse?: { folder: string }
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
  let name = base
  for (let i = 2; fs.existsSync(path.join(backupDir, name)); i++) name = `${base}-${i}`
  return name
}

// ---------------------------------------------------------------------------------------------
// Manifest

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Every regular file under `dir` (relative, `/`-separated, sorted), except the manifest. */
export function listFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name
      if (entry.isDirectory()) walk(child)
      else if (entry.isFile() && child !== MANIFEST) out.push(child)
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
  if (!dir)
    throw new UsageError(`no backup at '${from}' (looked for ${MANIFEST} in ${candidates.join(' and ')})`)
  return dir
}

// ---------------------------------------------------------------------------------------------
// Thin I/O: the dump and the restore run inside the `db` container; the file is streamed
// through a file descriptor, so a large database never sits in this process's memory.

const PG_DUMP_ARGS = ['exec', '-T', 'db', 'pg_dump', '-U', 'posthog', '-Fc', 'posthog']

export function pgDumpArgs(stackDir: string): string[] {
  return [...composePrefix(stackDir), ...PG_DUMP_ARGS]
}

export function pgRestoreArgs(stackDir: string): string[] {
  return [
    ...composePrefix(stackDir),
    ...['exec', '-T', 'db', 'pg_restore', '-U', 'posthog', '-d', 'posthog', '--clean', '--if-exists'],
    ...['--no-owner', '--exit-on-error'],
  ]
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? ''
}

/** Streams `pg_dump -Fc` from the db container into `file` (mode 0600). Empty output is an error. */
export async function dumpPostgres(
  stackDir: string,
  file: string,
  timeout: Duration = '120m',
): Promise<number> {
  const fd = fs.openSync(file, 'w', 0o600)
  let res: CommandResult
  try {
    res = await run(dockerBin(), pgDumpArgs(stackDir), { nothrow: true, timeout, stdout: fd })
  } finally {
    fs.closeSync(fd)
  }
  if (!res.ok)
    throw new RuntimeFailure(
      `pg_dump failed (exit ${res.exitCode ?? res.signal}): ${lastLine(res.stderr) || 'no message'}`,
      "check that the stack's db service is running ('docker compose ps db')",
    )
  const size = fs.statSync(file).size
  if (size === 0)
    throw new RuntimeFailure('pg_dump wrote nothing (an empty dump)', "check the db service's logs")
  return size
}

/** Feeds a custom-format dump to `pg_restore --clean --if-exists` in the db container. */
export async function restorePostgres(
  stackDir: string,
  file: string,
  timeout: Duration = '120m',
): Promise<void> {
  const fd = fs.openSync(file, 'r')
  try {
    const res = await run(dockerBin(), pgRestoreArgs(stackDir), { nothrow: true, timeout, stdin: fd })
    if (!res.ok)
      throw new RuntimeFailure(
        `pg_restore failed (exit ${res.exitCode ?? res.signal}): ${lastLine(res.stderr) || 'no message'}`,
        'the database may be partly restored: fix the cause and run restore again',
      )
  } finally {
    fs.closeSync(fd)
  }
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
// clickhouse container, which the server must allow (see README "ClickHouse backups").

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
      `ClickHouse BACKUP failed (exit ${res.exitCode ?? res.signal}): ${lastLine(res.stderr) || 'no message'}`,
      "give clickhouse a 'backups' disk mounted at /backups (README: ClickHouse backups), or leave out --clickhouse",
    )
}

// ---------------------------------------------------------------------------------------------
// One whole backup, shared by scripts/backup.mts and scripts/upgrade.mts.

export interface BackupOptions {
  clickhouse?: boolean
  log?: (line: string) => void
  now?: Date
}

export interface BackupResult {
  dir: string
  manifest: BackupManifest
  removed: string[]
}

/**
 * Takes a backup into BACKUP_DIR/<timestamp>/ (mode 0700): `.env` (0600) and the PostgreSQL
 * dump, then the manifest, then retention. Any failure removes the partial folder.
 */
export async function takeBackup(cfg: Config, opts: BackupOptions = {}): Promise<BackupResult> {
  const log = opts.log ?? (() => {})
  const { backupDir, keep } = backupSettings(cfg)
  const createdAt = opts.now ?? new Date()
  fs.mkdirSync(backupDir, { recursive: true, mode: 0o700 })
  const name = newBackupName(backupDir, createdAt)
  const dir = path.join(backupDir, name)
  fs.mkdirSync(dir, { mode: 0o700 })
  fs.chmodSync(dir, 0o700)
  try {
    fs.copyFileSync(cfg.envFile, path.join(dir, ENV_COPY))
    fs.chmodSync(path.join(dir, ENV_COPY), 0o600)
    log('dumping PostgreSQL (pg_dump -Fc) ...')
    const size = await dumpPostgres(cfg.stackDir, path.join(dir, PG_DUMP_FILE))
    log(`PostgreSQL dump: ${formatBytes(size)}`)
    if (opts.clickhouse) {
      log('backing up ClickHouse (BACKUP DATABASE posthog) ...')
      await backupClickhouse(cfg.stackDir, name)
    }
    const manifest = buildManifest({
      cfg,
      createdAt,
      files: await describeFiles(dir),
      posthogCommit: await checkoutCommit(cfg.stackDir),
      clickhouseFolder: opts.clickhouse ? path.join(backupDir, 'clickhouse', name) : undefined,
    })
    writeFileAtomic(path.join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 })
    return { dir, manifest, removed: retainQuietly(backupDir, keep, log) }
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true })
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
