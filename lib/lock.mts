// A lock that keeps two runs of a step from overlapping: an atomic `mkdir`, with the owner's
// pid and start time inside, so a lock left by a crashed run is recognised and taken over.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from './cli.mts'

export interface LockInfo {
  pid: number
  started: string
  command: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function readOwner(dir: string): LockInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as LockInfo
  } catch {
    return undefined
  }
}

/**
 * Takes the lock at `dir` or throws a RuntimeFailure naming the run that holds it.
 * Returns a release function; the lock is also released when the process exits.
 */
export function acquireLock(dir: string, command = process.argv.slice(1).join(' ')): () => void {
  fs.mkdirSync(path.dirname(dir), { recursive: true })
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.mkdirSync(dir)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      const owner = readOwner(dir)
      const stale = owner ? !alive(owner.pid) : isOld(dir)
      if (stale) {
        fs.rmSync(dir, { recursive: true, force: true })
        continue
      }
      throw new RuntimeFailure(
        `another run holds the lock ${dir}${owner ? ` (pid ${owner.pid}, since ${owner.started})` : ''}`,
        'wait for it to finish, or remove that directory if no such process runs',
      )
    }
    const info: LockInfo = { pid: process.pid, started: new Date().toISOString(), command }
    fs.writeFileSync(path.join(dir, 'owner.json'), JSON.stringify(info))
    let released = false
    const release = () => {
      if (released) return
      released = true
      if (readOwner(dir)?.pid === process.pid) fs.rmSync(dir, { recursive: true, force: true })
    }
    process.once('exit', release)
    return release
  }
  throw new RuntimeFailure(`could not take the lock ${dir}`, 'remove that directory and try again')
}

// A lock directory without an owner file is a run that died between mkdir and write.
function isOld(dir: string): boolean {
  try {
    return Date.now() - fs.statSync(dir).mtimeMs > 10_000
  } catch {
    return true
  }
}
