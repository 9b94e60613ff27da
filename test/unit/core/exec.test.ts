// The command runner runs argv without a shell: words reach the program unchanged, stdin is
// /dev/null unless input is given, timeouts kill, and a missing binary reads like a shell's 127.
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CommandFailed, describeExit, run, setCommandLogger, showCommand } from '../../../lib/core/exec.mts'
import { scratchDir } from '../../helpers/common.ts'

const node = process.execPath

describe('run', () => {
  afterEach(() => setCommandLogger(undefined))

  it('passes every word as it is: no shell expands, splits or redirects', async () => {
    const words = ['$HOME', 'a b', "it's", '*', '; echo pwned', '>out']
    const r = await run(node, ['-e', 'console.log(JSON.stringify(process.argv.slice(1)))', ...words])
    expect(JSON.parse(r.stdout)).toEqual(words)
    expect(r).toMatchObject({ ok: true, exitCode: 0, timedOut: false })
  })

  it('gives the child /dev/null as stdin unless input is given', async () => {
    const read = "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>process.stdout.write('['+d+']'))"
    expect((await run(node, ['-e', read])).stdout).toBe('[]')
    expect((await run(node, ['-e', read], { input: 'hello' })).stdout).toBe('[hello]')
  })

  it('rejects with one line on failure, resolves with nothrow', async () => {
    const fail = ['-e', 'process.stderr.write("first\\nthe reason\\n");process.exit(3)']
    const err = await run(node, fail).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CommandFailed)
    expect((err as CommandFailed).message).toMatch(/failed \(exit 3\): the reason$/)
    const r = await run(node, fail, { nothrow: true })
    expect(r).toMatchObject({ ok: false, exitCode: 3 })
  })

  it('kills a command that outlives its timeout', async () => {
    const r = await run(node, ['-e', 'setTimeout(() => {}, 60_000)'], { timeout: 300, nothrow: true })
    expect(r.timedOut).toBe(true)
    expect(r.ok).toBe(false)
    expect(describeExit(r)).toMatch(/^timed out after/)
  })

  it('reports a missing binary as a shell would (127, command not found)', async () => {
    const r = await run('no-such-binary-here', ['x'], { nothrow: true })
    expect(r.exitCode).toBe(127)
    expect(r.stderr).toMatch(/command not found/)
  })

  it('streams stdout into a file descriptor when asked', async () => {
    const file = path.join(scratchDir('exec-'), 'out')
    const fd = fs.openSync(file, 'w')
    try {
      await run(node, ['-e', 'process.stdout.write("x".repeat(100000))'], { stdout: fd })
    } finally {
      fs.closeSync(fd)
    }
    expect(fs.statSync(file).size).toBe(100_000)
  })

  it('tells the logger every argv before it runs (for --debug)', async () => {
    const seen: string[] = []
    setCommandLogger((argv) => seen.push(showCommand(argv)))
    await run(node, ['-e', '0', 'a b'])
    expect(seen).toEqual([`${node} -e 0 'a b'`])
  })
})
