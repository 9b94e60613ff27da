// Cost of one scheduled health run (all green, fake docker, a local /_health server), run as the
// EXACT command scripts/schedule.mts installs in the crontab, against a bare `node -e 0`: wall
// and CPU time (CPU of the whole process tree, from bash's `times`), median of several
// alternating iterations, and the ratio. Goal (issue 3): at most 4x a bare node start.
// Also shows how much of the run is the fake docker (a node process per call; a steady-state run
// makes one call, `docker inspect` of the containers the last run saw).
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { findCronEntry } from '../lib/monitor/schedule.mts'
import {
  makeStackProject,
  makeToolsDir,
  ROOT,
  run,
  scratch,
  startHealthServer,
} from '../test/helpers/monitor-env.ts'

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 15)
const exec = promisify(execFile)

interface Sample {
  wall: number
  cpu: number
}

/** Runs `command` with sh inside bash and reads the children's user+sys time from `times`. */
async function measure(command: string, env: NodeJS.ProcessEnv): Promise<Sample> {
  const started = performance.now()
  const { stdout } = await exec('bash', ['-c', `sh -c "$0" >/dev/null 2>&1; times`, command], {
    env,
    timeout: 60_000,
  })
  const wall = performance.now() - started
  const children = stdout.trim().split('\n').at(-1)!
  const secs = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]))
  return { wall, cpu: (secs[0]! + secs[1]!) * 1000 }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

function row(name: string, samples: Sample[], base?: { wall: number; cpu: number }): string {
  const wall = median(samples.map((s) => s.wall))
  const cpu = median(samples.map((s) => s.cpu))
  const ratio = base ? `   ${(wall / base.wall).toFixed(2)}x wall, ${(cpu / base.cpu).toFixed(2)}x cpu` : ''
  return `${name.padEnd(44)} wall ${wall.toFixed(0).padStart(5)} ms   cpu ${cpu.toFixed(0).padStart(5)} ms${ratio}`
}

async function main(): Promise<void> {
  const local = await startHealthServer('ok')
  try {
    const tools = makeToolsDir()
    const project = makeStackProject({ env: { POSTHOG_PROXY_HTTP_PORT: String(local.port) } })
    fs.appendFileSync(project.envFile, `STACK_DIR=${project.stackDir}\n`)
    const home = scratch('bench-home-')
    const log = path.join(home, 'health.log')
    const env = { ...process.env, ...project.env, PATH: tools.path, HOME: home }

    // Install the schedule exactly as a user would, then take the command out of the crontab.
    const installed = await run(
      path.join(ROOT, 'scripts/schedule.mts'),
      ['--platform', 'linux', '--log-file', log],
      {
        cwd: ROOT,
        env,
        timeoutMs: 120_000,
      },
    )
    if (installed.code !== 0) throw new Error(`schedule failed: ${installed.stderr}`)
    const entry = findCronEntry(fs.readFileSync(tools.crontabFile, 'utf8'), 'health')!
    const scheduled = entry.split(' ').slice(5).join(' ')
    const cronEnv = { ...env, HOMELAB_ENV_FILE: '' }

    // The first run lists the containers (compose ps + inspect); later ones inspect those seen.
    await measure(scheduled, cronEnv)
    const before = fs.readFileSync(project.dockerLog, 'utf8').trim().split('\n').length
    await measure(scheduled, cronEnv)
    if (!/^POSTHOG OK - /m.test(fs.readFileSync(log, 'utf8')))
      throw new Error(`the scheduled run is not green:\n${fs.readFileSync(log, 'utf8')}`)

    // The docker calls one steady-state run makes, straight to the fake.
    const calls = fs
      .readFileSync(project.dockerLog, 'utf8')
      .trim()
      .split('\n')
      .slice(before)
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv)
    const quote = (a: string) => `'${a.split("'").join(`'\\''`)}'`
    const fakeCmd = calls.map((argv) => [project.env.DOCKER_BIN!, ...argv].map(quote).join(' ')).join(' && ')

    const samples: Record<string, Sample[]> = { bare: [], health: [], fake: [] }
    for (let i = 0; i < ITERATIONS; i++) {
      samples.bare!.push(await measure('node -e 0', cronEnv))
      samples.health!.push(await measure(scheduled, cronEnv))
      samples.fake!.push(await measure(fakeCmd, cronEnv))
    }
    const base = {
      wall: median(samples.bare!.map((s) => s.wall)),
      cpu: median(samples.bare!.map((s) => s.cpu)),
    }
    const h = {
      wall: median(samples.health!.map((s) => s.wall)),
      cpu: median(samples.health!.map((s) => s.cpu)),
    }
    const f = { wall: median(samples.fake!.map((s) => s.wall)), cpu: median(samples.fake!.map((s) => s.cpu)) }

    console.log(`scheduled command: ${scheduled}`)
    console.log(`${ITERATIONS} alternating iterations, medians (CPU = user+sys of the whole process tree)\n`)
    console.log(row('node -e 0 (baseline)', samples.bare!))
    console.log(row('scheduled health run (bundle, fake docker)', samples.health!, base))
    console.log(
      row(`  of which: fake docker, ${calls.length} call${calls.length === 1 ? '' : 's'}`, samples.fake!),
    )
    const without = { wall: h.wall - f.wall, cpu: h.cpu - f.cpu }
    console.log(
      `${'  health without the fake (difference)'.padEnd(44)} wall ${without.wall.toFixed(0).padStart(5)} ms   cpu ${without.cpu
        .toFixed(0)
        .padStart(
          5,
        )} ms   ${(without.wall / base.wall).toFixed(2)}x wall, ${(without.cpu / base.cpu).toFixed(2)}x cpu`,
    )
    const ratio = h.wall / base.wall
    console.log(
      `\ngoal: at most 4x a bare node start: ${ratio.toFixed(2)}x wall (${ratio <= 4 ? 'met' : 'NOT met'}), ` +
        `${(h.cpu / base.cpu).toFixed(2)}x cpu; the fake docker is ${Math.round((f.wall / h.wall) * 100)} % of the wall time ` +
        '(real docker CLI calls cost more or less depending on the daemon)',
    )
  } finally {
    await local.close()
  }
}

await main()
