// How fast `up` notices that the stack became healthy (issue 2: "within 1 s of becoming so").
// A local server flips from 503 "Migrations are not up to date" (or from hanging every request)
// to 200 ok at a random moment; we measure flip -> pollHealth resolved. Side by side: the
// overlapping poller of lib/core/health.mts and a sequential poller with the Go hobby installer's
// 5 s interval (bin/hobby-installer WaitForHealth), the baseline.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { healthUrl, isHealthy, pollHealth, probeHealth } from '../lib/core/health.mts'

const TRIALS = Number(process.env.BENCH_TRIALS ?? 12)
const GOAL_MS = 1000
const BASELINE_INTERVAL_MS = 5000

type Mode = '503' | 'hang'

async function server(mode: Mode) {
  let healthy = false
  const s = http.createServer((_req, res) => {
    if (healthy) return res.writeHead(200).end('ok')
    if (mode === 'hang') return // never answered: a request made before the flip hangs until its timeout
    res.writeHead(503).end('Migrations are not up to date')
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return {
    port: (s.address() as AddressInfo).port,
    flip: () => {
      healthy = true
      return Date.now()
    },
    close: async () => {
      s.closeAllConnections()
      await new Promise((r) => s.close(r))
    },
  }
}

/** The baseline: one request at a time, 5 s apart, each with a 5 s timeout. */
async function sequentialPoll(url: string): Promise<number> {
  for (;;) {
    const r = await probeHealth(url, 5000)
    if (isHealthy(r)) return Date.now()
    await new Promise((res) => setTimeout(res, BASELINE_INTERVAL_MS))
  }
}

async function trial(mode: Mode, poller: 'overlapping' | 'sequential'): Promise<number> {
  const s = await server(mode)
  const url = healthUrl(s.port)
  const wait = 500 + Math.random() * 1500
  const done =
    poller === 'overlapping'
      ? pollHealth({ url, timeoutMs: 60_000 }).then(() => Date.now())
      : sequentialPoll(url)
  await new Promise((r) => setTimeout(r, wait))
  const flippedAt = s.flip()
  const detectedAt = await done
  await s.close()
  return detectedAt - flippedAt
}

function stats(xs: number[]) {
  const sorted = [...xs].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return { median: at(0.5), p95: at(0.95), max: sorted.at(-1)! }
}

const rows: string[] = []
for (const mode of ['503', 'hang'] as Mode[]) {
  const ours: number[] = []
  for (let i = 0; i < TRIALS; i++) ours.push(await trial(mode, 'overlapping'))
  const base: number[] = []
  // The baseline is slow (up to 10 s a trial): fewer trials.
  for (let i = 0; i < Math.max(2, Math.floor(TRIALS / 4)); i++) base.push(await trial(mode, 'sequential'))
  const o = stats(ours)
  const b = stats(base)
  rows.push(
    `${mode === '503' ? 'answers 503 until healthy' : 'hangs every request until healthy'}:`,
    `  lib/core/health pollHealth   median ${o.median} ms, p95 ${o.p95} ms, max ${o.max} ms (goal ${GOAL_MS} ms: max is ${(o.max / GOAL_MS).toFixed(2)}x the goal)`,
    `  sequential 5 s poller   median ${b.median} ms, p95 ${b.p95} ms, max ${b.max} ms`,
    `  ratio baseline/ours (median) ${(b.median / Math.max(1, o.median)).toFixed(1)}x`,
  )
}
console.log(`detection delay after the stack turns healthy (${TRIALS} trials each):`)
for (const r of rows) console.log(r)
