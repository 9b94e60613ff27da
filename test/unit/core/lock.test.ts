// The step lock: a crashed run's lock is taken over, also when its pid now belongs to another
// process; a live run's lock is not; and two runs that both find a stale lock cannot both take it.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { acquireLock, LockHeld, type LockInfo, processStartId } from '../../../lib/core/lock.mts'
import { ROOT, runProcess, scratchDir, TSX } from '../../helpers/common.ts'

const children: ReturnType<typeof spawn>[] = []
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
})

function lockWithOwner(owner: Partial<LockInfo>): string {
  const dir = path.join(scratchDir('lock-'), 'run.lock')
  fs.mkdirSync(dir)
  fs.writeFileSync(
    path.join(dir, 'owner.json'),
    JSON.stringify({ started: '2026-11-25T03:00:00.000Z', command: 'health', ...owner }),
  )
  return dir
}

/** A pid no process has now: one that just exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'])
  await new Promise((r) => child.on('exit', r))
  return child.pid!
}

function owner(dir: string): LockInfo {
  return JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as LockInfo
}

describe('acquireLock', () => {
  it('takes a free lock, refuses it while held, and frees it on release', () => {
    const dir = path.join(scratchDir('lock-'), 'run.lock')
    const release = acquireLock(dir)
    expect(owner(dir)).toMatchObject({ pid: process.pid, processStart: processStartId(process.pid) })
    expect(() => acquireLock(dir)).toThrow(LockHeld)
    release()
    expect(fs.existsSync(dir)).toBe(false)
    acquireLock(dir)()
  })

  it('takes over the lock of a process that is gone', async () => {
    const dir = lockWithOwner({ pid: await deadPid() })
    const release = acquireLock(dir)
    expect(owner(dir).pid).toBe(process.pid)
    release()
  })

  it('takes over a lock whose pid now belongs to another process (a reboot reused it)', () => {
    // pid 1 always runs; the lock says it was a process started at another time.
    const dir = lockWithOwner({ pid: 1, processStart: `${processStartId(1)}-before-the-reboot` })
    const release = acquireLock(dir)
    expect(owner(dir).pid).toBe(process.pid)
    release()
  })

  it('keeps the lock of a live process that started when the lock says', () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'])
    children.push(child)
    const dir = lockWithOwner({ pid: child.pid!, processStart: processStartId(child.pid!)! })
    expect(() => acquireLock(dir)).toThrow(/another run holds the lock .* \(pid \d+, since /)
  })

  it('two runs that both judged a lock stale cannot both take it', async () => {
    const dir = lockWithOwner({ pid: await deadPid() })
    let rival: (() => void) | undefined
    // Between this run's judgement and its takeover, a rival (same situation) takes the lock.
    expect(() =>
      acquireLock(dir, {
        beforeTakeover: () => {
          rival = acquireLock(dir, { command: 'rival' })
        },
      }),
    ).toThrow(LockHeld)
    expect(owner(dir).command).toBe('rival')
    rival?.()
  })

  it('exactly one of several processes starting at once takes a stale lock', async () => {
    const dir = lockWithOwner({ pid: await deadPid() })
    const work = path.dirname(dir)
    const go = path.join(work, 'go')
    const script = path.join(work, 'contender.mts')
    fs.writeFileSync(
      script,
      [
        `import fs from 'node:fs'`,
        `import { acquireLock } from ${JSON.stringify(path.join(ROOT, 'lib/core/lock.mts'))}`,
        `while (!fs.existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 2))`,
        `try { acquireLock(${JSON.stringify(dir)}); console.log('took') } catch (e) { console.log(e.name === 'LockHeld' || e.constructor.name === 'LockHeld' ? 'held' : String(e)) }`,
        // Hold it while the others try.
        `await new Promise((r) => setTimeout(r, 1500))`,
      ].join('\n'),
    )
    const runs = Array.from({ length: 6 }, () =>
      runProcess(process.execPath, ['--import', TSX, script], { timeoutMs: 60_000 }),
    )
    await new Promise((r) => setTimeout(r, 1500)) // let them all start and wait for the signal
    fs.writeFileSync(go, '')
    const answers = (await Promise.all(runs)).map((r) => r.stdout.trim())
    expect(answers.filter((a) => a === 'took')).toHaveLength(1)
    expect(answers.filter((a) => a === 'held')).toHaveLength(5)
  })

  it('a folder where no lock can be made is not reported as a lock held by another run', () => {
    const file = path.join(scratchDir('lock-'), 'a-file')
    fs.writeFileSync(file, '')
    let err: unknown
    try {
      acquireLock(path.join(file, 'state.json.lock'))
    } catch (e) {
      err = e
    }
    expect(err).not.toBeInstanceOf(LockHeld)
    expect(['ENOTDIR', 'EEXIST']).toContain((err as NodeJS.ErrnoException).code)
  })
})

describe('processStartId', () => {
  it('tells a process apart from a later one with the same pid, and a missing one', async () => {
    expect(processStartId(process.pid)).toBe(processStartId(process.pid))
    expect(processStartId(process.pid)).not.toBe(processStartId(1))
    expect(processStartId(await deadPid())).toBeNull()
  })

  it('asks ps for the start time where there is no /proc (macOS)', async () => {
    const mine = processStartId(process.pid, 'darwin')
    expect(mine).toMatch(/^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}$/)
    expect(processStartId(await deadPid(), 'darwin')).toBeNull()
  })
})
