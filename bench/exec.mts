// Benchmark (issue 9): per-call cost of the command runner (lib/core/exec.mts `run`: no shell, stdin
// /dev/null, output captured, a timeout) against a bare `spawnSync` of the same binary, one call
// after the other, alternating so a busy machine slows both alike. Goal: run <= 1.5x spawnSync.
// For scale, the same command the way zx's `$` ran it: through `bash -c` with a socket as stdin
// and no SHLVL (as under cron), with a ~/.bashrc that does some work, which bash then sources.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { run } from '../lib/core/exec.mts'

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 200)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length

async function time(fn: () => unknown): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

async function compare(bin: string, args: string[]): Promise<{ bare: number[]; runner: number[] }> {
  const bare: number[] = []
  const runner: number[] = []
  const sync = () => spawnSync(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  for (let i = 0; i < 10; i++) {
    sync()
    await run(bin, args)
  }
  for (let i = 0; i < ITERATIONS; i++) {
    bare.push(await time(sync))
    runner.push(await time(() => run(bin, args)))
  }
  return { bare, runner }
}

function row(name: string, xs: number[], base?: number[]): string {
  const ratio = base
    ? `  ${(median(xs) / median(base)).toFixed(2)}x (mean ${(mean(xs) / mean(base)).toFixed(2)}x)`
    : ''
  return `${name.padEnd(38)} median ${median(xs).toFixed(2).padStart(7)} ms   mean ${mean(xs).toFixed(2).padStart(7)} ms${ratio}`
}

/** `bash -c CMD` as zx ran it: stdin a socket (Node's pipe), no SHLVL, a .bashrc that works. */
async function throughBash(cmd: string, home: string, n: number): Promise<number[]> {
  const times: number[] = []
  for (let i = 0; i < n; i++)
    times.push(
      await time(() =>
        run('bash', ['-c', cmd], { input: '', env: { HOME: home, PATH: process.env.PATH }, timeout: '30s' }),
      ),
    )
  return times
}

console.log(`${ITERATIONS} calls each, alternating, on ${os.cpus().length} CPUs`)
let worst = 0
for (const [bin, args] of [
  ['/bin/true', []],
  ['git', ['--version']],
] as [string, string[]][]) {
  const { bare, runner } = await compare(bin, args)
  const shown = [bin, ...args].join(' ')
  console.log(row(`spawnSync ${shown}`, bare))
  console.log(row(`run ${shown}`, runner, bare))
  worst = Math.max(worst, median(runner) / median(bare))
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-home-'))
// A .bashrc that costs what a typical one does (a few subshells, as `pyenv init -` starts).
fs.writeFileSync(path.join(home, '.bashrc'), 'for i in 1 2 3 4 5; do x=$(/bin/true); done\n')
const bash = await throughBash('/bin/true', home, 30)
console.log(row('bash -c /bin/true (zx, cron, .bashrc)', bash))
fs.rmSync(home, { recursive: true, force: true })

const goal = 1.5
console.log(
  `\nrunner / spawnSync, worst median ratio: ${worst.toFixed(2)}x (goal <= ${goal}x): ${worst <= goal ? 'met' : 'NOT met'}`,
)
