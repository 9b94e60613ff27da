// Thin file helpers: atomic writes that leave an unchanged file untouched (same bytes, same
// mtime), and timestamped backups of files we replace outside the repository.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

export interface WriteOptions {
  mode?: number
  /** Keep a copy of a replaced file as `<file>.bak-<timestamp>` (files outside the repo). */
  backup?: boolean
}

export type WriteResult = 'created' | 'updated' | 'unchanged'

export function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

export function timestamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/[:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
}

/** Copies `file` next to itself as `<file>.bak-<timestamp>` and returns the backup's path. */
export function backupFile(file: string): string {
  let dest = `${file}.bak-${timestamp()}`
  for (let i = 1; fs.existsSync(dest); i++) dest = `${file}.bak-${timestamp()}-${i}`
  fs.copyFileSync(file, dest, fs.constants.COPYFILE_EXCL)
  return dest
}

/** Where `file` leads when it is a symlink (followed to the end); `file` itself otherwise. */
function symlinkTarget(file: string): string {
  try {
    if (!fs.lstatSync(file).isSymbolicLink()) return file
  } catch {
    return file
  }
  try {
    return fs.realpathSync(file)
  } catch {
    // A dangling link: write where it points.
    return path.resolve(path.dirname(file), fs.readlinkSync(file))
  }
}

/**
 * Writes `content` to `file` through a temp file and rename, so readers never see half a file.
 * A file that already holds exactly `content` (and the mode asked for) is not touched.
 */
export function writeFileAtomic(
  target: string,
  content: string | Buffer,
  opts: WriteOptions = {},
): WriteResult {
  // A symlink (e.g. .env kept elsewhere) is written through: the rename replaces its target, not the link.
  const file = symlinkTarget(target)
  const data = typeof content === 'string' ? Buffer.from(content) : content
  let existing: Buffer | undefined
  try {
    existing = fs.readFileSync(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  const modeOk = opts.mode === undefined || !existing || (fs.statSync(file).mode & 0o777) === opts.mode
  if (existing?.equals(data)) {
    if (!modeOk) fs.chmodSync(file, opts.mode!)
    return modeOk ? 'unchanged' : 'updated'
  }
  fs.mkdirSync(path.dirname(file), { recursive: true })
  if (existing && opts.backup) backupFile(file)
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`)
  const mode = opts.mode ?? (existing ? fs.statSync(file).mode & 0o777 : 0o644)
  try {
    fs.writeFileSync(tmp, data, { mode })
    fs.chmodSync(tmp, mode) // writeFileSync's mode is filtered by the umask
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
  return existing ? 'updated' : 'created'
}
