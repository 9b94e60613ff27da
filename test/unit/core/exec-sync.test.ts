// The runner's two additions for runs with a hard time limit and for locks: commands still
// running can all be killed at once, and a synchronous run keeps the runner's rules.
import { describe, expect, it } from 'vitest'
import { killRunning, run, runSync, setCommandLogger } from '../../../lib/core/exec.mts'

const node = process.execPath

describe('killRunning', () => {
  it('ends every command still running, which then settle as killed', async () => {
    const slow = [run(node, ['-e', 'setTimeout(() => {}, 60_000)'], { nothrow: true, timeout: '60s' })]
    slow.push(run(node, ['-e', 'setTimeout(() => {}, 60_000)'], { nothrow: true, timeout: '60s' }))
    await new Promise((r) => setTimeout(r, 200))
    expect(killRunning()).toBe(2)
    for (const r of await Promise.all(slow)) expect(r).toMatchObject({ ok: false, signal: 'SIGKILL' })
    expect(killRunning()).toBe(0)
  })

  it('forgets commands that ended by themselves', async () => {
    await run(node, ['-e', '0'])
    expect(killRunning()).toBe(0)
  })
})

describe('runSync', () => {
  it('runs argv without a shell, stdin closed, and reports like run', () => {
    const r = runSync(node, [
      '-e',
      'process.stdin.on("data",()=>{}).on("end",()=>console.log(process.argv[1]))',
      '$HOME *',
    ])
    expect(r).toMatchObject({ ok: true, exitCode: 0, stdout: '$HOME *\n' })
    expect(runSync(node, ['-e', 'process.exit(4)'])).toMatchObject({ ok: false, exitCode: 4 })
    expect(runSync('no-such-binary-here', [])).toMatchObject({ ok: false, exitCode: 127 })
  })

  it('kills at its timeout and tells the --debug logger', () => {
    const seen: string[][] = []
    setCommandLogger((argv) => seen.push(argv))
    try {
      const r = runSync(node, ['-e', 'setTimeout(() => {}, 60_000)'], { timeout: 300 })
      expect(r).toMatchObject({ ok: false, timedOut: true })
    } finally {
      setCommandLogger(undefined)
    }
    expect(seen).toHaveLength(1)
  })
})
