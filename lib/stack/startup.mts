// The ordered start shared by `up`, `upgrade` and `restore` (a known pitfall: `web` must
// finish its migrations before the node services query the new schema):
//   1. the data stores;
//   2. `web` alone, with the Caddy proxy in front of it (`--no-deps`), until `/_health` stops
//      answering 502 / 503 "Migrations are not up to date";
//   3. everything else (`up -d`), then wait for `/_health` 200 `ok`.
// Each phase is exported on its own, so upgrade can run "web alone, wait, then all".
import path from 'node:path'
import { retry, sleep } from 'zx'
import { type FlagSpec, RuntimeFailure } from '../core/cli.mts'
import { compose, composePs, type StackServices } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import type { CommandResult } from '../core/exec.mts'
import {
  describeProbe,
  formatElapsed,
  healthUrl,
  isHealthy,
  isPastMigrations,
  type PollResult,
  type ProbeResult,
  pollHealth,
  startProgress,
} from '../core/health.mts'
import { type ServiceReadiness, waitForServices } from './readiness.mts'
import { probeRoutes, ROUTE_GROUPS, type RouteResult } from './routes.mts'

/** Data stores of the hobby stacks, old and new; intersected with the enabled services. */
export const DATA_STORES = [
  'db',
  'redis',
  'redis7',
  'valkey',
  'clickhouse',
  'zookeeper',
  'kafka',
  'objectstorage',
  'seaweedfs',
  'elasticsearch',
]

/** The lock every stack-changing step shares (up, down, upgrade, restore, backup). */
export function stackLockDir(cfg: Pick<Config, 'stackDir'>): string {
  return path.join(cfg.stackDir, '.lock')
}

export interface StartOptions {
  /** The services Compose runs, and which of them run once (lib/core/docker stackServices). */
  services: StackServices
  log: (line: string) => void
  /** Attempts per `docker compose up -d` (image pulls fail now and then); default 3. */
  attempts?: number
  /** Wait before retry n is n × this; default 5 s. */
  retryBackoffMs?: number
  /** Live progress line (default: stdout is a TTY). */
  tty?: boolean
  /** Both health waits together may take this long; default cfg.healthTimeoutMs. */
  healthTimeoutMs?: number
  /** Health probe interval (default 250 ms). */
  pollIntervalMs?: number
  /** How long every service must stay up after /_health answers ok; default 15 s. */
  settleMs?: number
}

export const DEFAULT_SETTLE_MS = 15_000

/** `--settle` of the steps that start the stack (up, upgrade, restore). */
export const SETTLE_FLAG = {
  type: 'string',
  env: 'HOMELAB_SETTLE',
  help: 'after /_health answers ok, how long every service must stay up before the start counts',
  default: '15s',
} as const satisfies FlagSpec

/** `--retry-backoff` of the steps that retry docker compose up or a pull (up, upgrade). */
export const RETRY_BACKOFF_FLAG = {
  type: 'string',
  env: 'HOMELAB_RETRY_BACKOFF',
  help: 'wait before retrying a failed docker compose up or image pull (the n-th retry waits n times this)',
  default: '5s',
} as const satisfies FlagSpec

export function dataStoreServices(enabled: string[]): string[] {
  return DATA_STORES.filter((s) => enabled.includes(s))
}

/** The services phase 2 starts: web, and the proxy that /_health goes through. */
export function webAloneServices(enabled: string[]): string[] {
  return ['web', 'proxy'].filter((s) => enabled.includes(s))
}

function lastLine(out: CommandResult): string {
  const text = `${out.stderr}\n${out.stdout}`.trim()
  return text.split('\n').filter(Boolean).at(-1) ?? (out.exitCode === null ? 'timed out' : 'no output')
}

/** `docker compose up -d <args>`, retried; progress shown while it runs (first starts pull images). */
export async function composeUp(
  cfg: Config,
  args: string[],
  label: string,
  opts: Pick<StartOptions, 'attempts' | 'retryBackoffMs' | 'log' | 'tty'>,
): Promise<void> {
  const attempts = opts.attempts ?? 3
  const backoff = opts.retryBackoffMs ?? 5000
  const started = Date.now()
  let attempt = 0
  await retry(attempts, linearDelays(backoff, attempts), async () => {
    attempt++
    // Progress stops before anything is logged, so a live line never swallows a message.
    const stop = startProgress({
      tty: opts.tty,
      snapshot: () => ({ label, elapsedMs: Date.now() - started }),
    })
    const out = await compose(cfg.stackDir, ['up', '-d', ...args], { timeout: '60m', nothrow: true }).finally(
      stop,
    )
    if (out.ok) return
    if (attempt < attempts)
      opts.log(`docker compose up failed (${lastLine(out)}); retry ${attempt} of ${attempts - 1} shortly`)
    throw new RuntimeFailure(
      `docker compose up -d ${args.join(' ')} failed ${attempts} times: ${lastLine(out)}`,
      'check the network (image pulls) and the message above, then run up again',
    )
  })
}

/** zx retry's delays: `base` × the attempt number, and no wait after the last attempt. */
function* linearDelays(base: number, attempts: number): Generator<number> {
  for (let n = 1; n < attempts; n++) yield base * n
  yield 0
}

export async function startDataStores(cfg: Config, opts: StartOptions): Promise<string[]> {
  const stores = dataStoreServices(opts.services.expected)
  if (stores.length === 0) return stores
  opts.log(`starting the data stores: ${stores.join(', ')}`)
  await composeUp(cfg, stores, 'starting the data stores (the first start pulls images)', opts)
  return stores
}

export async function startWebAlone(cfg: Config, opts: StartOptions): Promise<string[]> {
  const services = webAloneServices(opts.services.expected)
  opts.log(`starting ${services.join(' and ')} alone, so migrations finish before the node services start`)
  await composeUp(cfg, ['--no-deps', ...services], `starting ${services.join(' and ')}`, opts)
  return services
}

export async function startEverything(cfg: Config, opts: StartOptions): Promise<void> {
  opts.log('starting everything else')
  await composeUp(cfg, ['--no-build'], 'starting every service', opts)
}

interface WaitOptions extends StartOptions {
  timeoutMs: number
}

/** Running / expected-to-run counts for the progress line, refreshed at most every 5 s. */
function containerCounter(cfg: Config) {
  let counts: { running: number; total: number } | undefined
  let busy = false
  let at = 0
  return () => {
    if (!busy && Date.now() - at > 5000) {
      busy = true
      at = Date.now()
      composePs(cfg.stackDir, { timeout: '10s' })
        .then((ps) => {
          const live = ps.filter((p) => !(p.State === 'exited' && p.ExitCode === 0))
          counts = { running: live.filter((p) => p.State === 'running').length, total: live.length }
        })
        .catch(() => {})
        .finally(() => {
          busy = false
        })
    }
    return counts
  }
}

async function waitForHealth(
  cfg: Config,
  opts: WaitOptions,
  label: string,
  until: (r: ProbeResult) => boolean,
): Promise<PollResult> {
  const started = Date.now()
  const counts = containerCounter(cfg)
  let last: ProbeResult | undefined
  const stop = startProgress({
    tty: opts.tty,
    snapshot: () => ({ label, elapsedMs: Date.now() - started, ...counts(), last, showHealth: true }),
  })
  try {
    return await pollHealth({
      url: healthUrl(cfg.proxyPort),
      timeoutMs: opts.timeoutMs,
      until,
      intervalMs: opts.pollIntervalMs,
      onProbe: (r) => {
        last = r
      },
    })
  } finally {
    stop()
  }
}

/** Phase 2's wait: until web answers past its migrations. */
export function waitForMigrations(cfg: Config, opts: WaitOptions): Promise<PollResult> {
  return waitForHealth(cfg, opts, "waiting for web's migrations", isPastMigrations)
}

/** Phase 3's wait: until /_health answers 200 `ok`. */
export function waitForHealthy(cfg: Config, opts: WaitOptions): Promise<PollResult> {
  return waitForHealth(cfg, opts, 'waiting for PostHog', isHealthy)
}

export type StartResult = { ok: true; elapsedMs: number } | StartFailure

export interface StartFailure {
  ok: false
  phase: 'migrations' | 'health' | 'services' | 'routes'
  last: ProbeResult | undefined
  /** The services that should be running at that point. */
  expected: string[]
  timeoutMs: number
  /** For `services`: the ones that failed or never became ready. */
  problems?: ServiceReadiness[]
  /** For `routes`: the capture path's routes that do not reach their service. */
  deadRoutes?: RouteResult[]
}

/** One line saying where the ordered start stopped and why. */
export function describeStartFailure(result: StartFailure): string {
  if (result.phase === 'routes') {
    const dead = (result.deadRoutes ?? []).map((r) => `${r.path} (${r.error ?? r.status})`)
    return `/_health answers ok and every service runs, but the capture path does not: ${dead.join(', ')}`
  }
  if (result.phase === 'services') {
    const names = (result.problems ?? []).map((p) => `${p.service} ${p.text}`)
    return `/_health answers ok, but not every service runs: ${names.join('; ')}`
  }
  const what =
    result.phase === 'migrations' ? 'web did not finish its migrations' : 'PostHog did not become healthy'
  return `${what} within ${formatElapsed(result.timeoutMs)} (last /_health: ${describeProbe(result.last)})`
}

/** The services a failed start concerns: the ones not ready, those behind dead routes, or all started so far. */
export function startFailureServices(result: StartFailure): string[] {
  if (result.phase === 'services') return (result.problems ?? []).map((p) => p.service)
  if (result.phase === 'routes') {
    const groups = new Set((result.deadRoutes ?? []).map((r) => r.group))
    return ROUTE_GROUPS.filter((g) => groups.has(g.group)).map((g) => g.service)
  }
  return result.expected
}

/** The whole ordered start. Throws RuntimeFailure when `up -d` keeps failing; a timeout is a result. */
export async function startStack(cfg: Config, opts: StartOptions): Promise<StartResult> {
  const timeoutMs = opts.healthTimeoutMs ?? cfg.healthTimeoutMs
  const stores = await startDataStores(cfg, opts)
  const web = await startWebAlone(cfg, opts)
  const waitStarted = Date.now()
  const migrated = await waitForMigrations(cfg, { ...opts, timeoutMs })
  if (!migrated.ok)
    return { ok: false, phase: 'migrations', last: migrated.last, expected: [...stores, ...web], timeoutMs }
  opts.log(`web is up after ${formatElapsed(migrated.elapsedMs)} (migrations done)`)
  await startEverything(cfg, opts)
  const left = Math.max(1000, timeoutMs - (Date.now() - waitStarted))
  const healthy = await waitForHealthy(cfg, { ...opts, timeoutMs: left })
  const { expected, oneShot } = opts.services
  if (!healthy.ok) return { ok: false, phase: 'health', last: healthy.last, expected, timeoutMs }
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS
  opts.log(
    `/_health answers ok; checking that all ${expected.length} services run and stay up (${formatElapsed(settleMs)})`,
  )
  const services = await waitForServices(cfg, {
    expected,
    oneShot,
    settleMs,
    timeoutMs: Math.max(settleMs + 1000, timeoutMs - (Date.now() - waitStarted)),
    tty: opts.tty,
    pollIntervalMs: Math.min(2000, Math.max(100, settleMs / 4)),
  })
  if (!services.ok)
    return {
      ok: false,
      phase: 'services',
      last: healthy.last,
      expected,
      timeoutMs,
      problems: services.problems,
    }
  const routes = await waitForRoutes(cfg, expected, settleMs)
  if (routes.length)
    return { ok: false, phase: 'routes', last: healthy.last, expected, timeoutMs, deadRoutes: routes }
  return { ok: true, elapsedMs: Date.now() - waitStarted }
}

/**
 * /_health says only that web migrated: the capture path is proven by a request through the
 * proxy to each route group whose service runs (lib/stack/routes.mts). A service that has only just
 * started may take a moment to listen, so the probes are repeated for up to `windowMs` (the
 * settle period) until they pass. Returns the routes still dead.
 */
export async function waitForRoutes(
  cfg: Config,
  expected: string[],
  windowMs: number,
): Promise<RouteResult[]> {
  const deadline = Date.now() + windowMs
  const baseUrl = `http://127.0.0.1:${cfg.proxyPort}`
  for (;;) {
    const dead = (await probeRoutes({ baseUrl, enabledServices: expected, timeoutMs: 5000 })).filter(
      (r) => !r.ok,
    )
    if (dead.length === 0 || Date.now() >= deadline) return dead
    await sleep(Math.min(2000, Math.max(0, deadline - Date.now())))
  }
}
