// Benchmark (issue 9): how long a health run takes when everything it waits on hangs: every
// docker call (a daemon stuck on a full disk) and the webhook receiver. The whole run, webhook
// POST included, must end within --timeout + 1 s; measured at the default 20 s and at 5 s, as
// the bundled script that cron runs (node dist/health.mjs), from spawn to exit.
import path from 'node:path'
import {
  bundled,
  makeStackProject,
  ROOT,
  run,
  startHealthServer,
  startWebhook,
} from '../test/helpers/monitor-env.ts'

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2)

const local = await startHealthServer('ok')
const hook = await startWebhook({ hang: true })
try {
  const health = await bundled(path.join(ROOT, 'scripts/health.mts'))
  console.log('every docker call hangs (120 s), the webhook never answers; wall time of the whole process')
  let worstOver = Number.NEGATIVE_INFINITY
  for (const timeout of [20, 5]) {
    for (let i = 0; i < ITERATIONS; i++) {
      const p = makeStackProject({ env: { HEALTH_WEBHOOK_URL: hook.url } })
      p.scenario({ rules: [{ match: '.', delayMs: 120_000 }] })
      const args = ['--local-url', local.url, ...(timeout === 20 ? [] : ['--timeout', `${timeout}s`])]
      const r = await run(health, args, { cwd: p.dir, env: p.env, tsx: false, timeoutMs: 120_000 })
      const over = r.ms - timeout * 1000
      worstOver = Math.max(worstOver, over)
      console.log(
        `--timeout ${`${timeout}s`.padEnd(4)}${timeout === 20 ? ' (default)' : '          '}  ${(r.ms / 1000).toFixed(2)} s  ` +
          `(${over >= 0 ? '+' : ''}${(over / 1000).toFixed(2)} s)  exit ${r.code}  ${r.stdout.split('\n')[0]!.slice(0, 90)}`,
      )
    }
  }
  console.log(
    `\ngoal: at most --timeout + 1 s: worst ${worstOver >= 0 ? '+' : ''}${(worstOver / 1000).toFixed(2)} s (${worstOver <= 1000 ? 'met' : 'NOT met'})`,
  )
} finally {
  await local.close()
  await hook.close()
}
