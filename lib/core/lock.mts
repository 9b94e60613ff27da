// A lock that keeps two runs of a step from overlapping: an atomic `mkdir`, with the owner's
// pid and the start time of that process inside, so a lock left by a crashed run is recognised
// and taken over, even after a reboot has given its pid to another process.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from './cli.mts'
import { runSync } from './exec.mts'

export interface LockInfo {
  pid: number
  started: string
  command: string
  /** When the owning process started, as the system tells it (see processStartId). */
  processStart?: string
  /** Tells this owner apart from a later one with the same pid. */
  token?: string
}

/** Another run holds the lock (as opposed to a folder where no lock can be made at all). */
export class LockHeld extends RuntimeFailure {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * When process `pid` started, as an opaque string that changes when the pid is reused: on Linux
 * the boot id and the start time in clock ticks (/proc/<pid>/stat, field 22), on macOS `ps`'s
 * lstart. `null`: no such process. `undefined`: this system cannot tell.
 */
export function processStartId(pid: number, platform = process.platform): string | null | undefined {
  if (platform === 'linux' && fs.existsSync('/proc/self/stat')) {
    let stat: string
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      return null
    }
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    const startTicks = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .at(19)
    return `${bootId()}:${startTicks}`
  }
  if (platform === 'darwin' || platform === 'linux') {
    const ps = runSync('ps', ['-o', 'lstart=', '-p', String(pid)], { timeout: '5s' })
    if (ps.exitCode === 1 && ps.stdout.trim() === '') return null
    return ps.ok ? ps.stdout.trim().replace(/\s+/g, ' ') : undefined
  }
  return undefined
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return 'boot'
  }
}

/** Whether the process that wrote `owner` is gone (or its pid now belongs to another process). */
export function ownerIsGone(owner: LockInfo): boolean {
  if (!owner.processStart) return !alive(owner.pid)
  const now = processStartId(owner.pid)
  if (now === undefined) return !alive(owner.pid)
  return now !== owner.processStart
}

function readOwner(dir: string): LockInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as LockInfo
  } catch {
    return undefined
  }
}

/** Written through a temporary file and a rename, so a reader never sees half of it. */
function writeOwner(dir: string, info: LockInfo): void {
  const tmp = path.join(dir, `.owner.${randomBytes(4).toString('hex')}.tmp`)
  fs.writeFileSync(tmp, JSON.stringify(info))
  fs.renameSync(tmp, path.join(dir, 'owner.json'))
}

// A lock directory without an owner file is a run that died between mkdir and write.
const OWNERLESS_AFTER_MS = 10_000

function isStale(dir: string, owner: LockInfo | undefined): boolean {
  if (owner) return ownerIsGone(owner)
  try {
    return Date.now() - fs.statSync(dir).mtimeMs > OWNERLESS_AFTER_MS
  } catch {
    return false
  }
}

function sameOwner(a: LockInfo | undefined, b: LockInfo | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

export interface LockOptions {
  command?: string
  /** Called between judging a lock stale and taking it over (tests interleave a rival here). */
  beforeTakeover?: () => void
}

/**
 * Takes over the stale lock at `dir`; false when another run took it first. The lock directory
 * is never removed here: `takeover/` inside it admits one taker at a time, which checks again
 * that the owner it judged gone is still the owner before writing itself in. Two runs that both
 * saw the same stale lock cannot both take it.
 */
function takeOver(dir: string, judged: LockInfo | undefined, info: LockInfo): boolean {
  const gate = path.join(dir, 'takeover')
  try {
    fs.mkdirSync(gate)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    // EEXIST: someone is taking it over right now (or died doing so long ago: then clear the gate).
    if (code === 'EEXIST' && isOldGate(gate)) fs.rmSync(gate, { recursive: true, force: true })
    return false
  }
  try {
    const owner = readOwner(dir)
    if (!sameOwner(owner, judged) || !isStale(dir, owner)) return false
    writeOwner(dir, info)
    return true
  } finally {
    fs.rmSync(gate, { recursive: true, force: true })
  }
}

function isOldGate(gate: string): boolean {
  try {
    return Date.now() - fs.statSync(gate).mtimeMs > OWNERLESS_AFTER_MS
  } catch {
    return false
  }
}

/** One attempt: a fresh lock, or the takeover of a stale one. */
function tryTake(dir: string, info: LockInfo, opts: LockOptions): boolean {
  try {
    fs.mkdirSync(dir)
    writeOwner(dir, info)
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  }
  const owner = readOwner(dir)
  if (!isStale(dir, owner)) return false
  opts.beforeTakeover?.()
  return takeOver(dir, owner, info)
}

/**
 * Takes the lock at `dir` or throws LockHeld naming the run that holds it (a folder where no
 * lock can be made throws the file system's error). Returns a release function; the lock is
 * also released when the process exits.
 */
export function acquireLock(dir: string, options: LockOptions | string = {}): () => void {
  const opts = typeof options === 'string' ? { command: options } : options
  const info: LockInfo = {
    pid: process.pid,
    started: new Date().toISOString(),
    command: opts.command ?? process.argv.slice(1).join(' '),
    processStart: processStartId(process.pid) ?? undefined,
    token: randomBytes(8).toString('hex'),
  }
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  // A few rounds: a lock released between our mkdir and our look at it is simply taken next round.
  for (let round = 0; !tryTake(dir, info, opts); round++) {
    if (round < 2 && !fs.existsSync(dir)) continue
    const holder = readOwner(dir)
    throw new LockHeld(
      `another run holds the lock ${dir}${holder ? ` (pid ${holder.pid}, since ${holder.started})` : ''}`,
      'wait for it to finish, or remove that directory if no such process runs',
    )
  }
  let released = false
  const release = () => {
    if (released) return
    released = true
    if (readOwner(dir)?.token === info.token) fs.rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', release)
  return release
}
