// The ordered start shared by `up`, `upgrade` and `restore` (pitfall 4 of the seed: `web` must
// finish its migrations before the node services query the new schema):
//   1. the data stores;
//   2. `web` alone, with the Caddy proxy in front of it (`--no-deps`), until `/_health` stops
//      answering 502 / 503 "Migrations are not up to date";
//   3. everything else (`up -d`), then wait for `/_health` 200 `ok`.
// Each phase is exported on its own, so upgrade can run "web alone, wait, then all".
import path from 'node:path'
import { RuntimeFailure } from './cli.mts'
import { type ComposePsEntry, compose, composePs, docker } from './docker.mts'
import type { Config } from './env.mts'
import type { CommandResult } from './exec.mts'
import {
  formatElapsed,
  healthUrl,
  isHealthy,
  isPastMigrations,
  type PollResult,
  type ProbeResult,
  pollHealth,
  startProgress,
} from './health.mts'

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

/** Services that run once and exit 0 by design, or only via `compose run`. */
export const ONE_SHOT = ['kafka-init', 'asyncmigrationscheck']

/** The lock every stack-changing step shares (up, down, upgrade, restore, backup). */
export function stackLockDir(cfg: Pick<Config, 'stackDir'>): string {
  return path.join(cfg.stackDir, '.lock')
}

export interface StartOptions {
  enabledServices: string[]
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
}

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

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
  for (let attempt = 1; ; attempt++) {
    // Progress stops before anything is logged, so a live line never swallows a message.
    const stop = startProgress({
      tty: opts.tty,
      snapshot: () => ({ label, elapsedMs: Date.now() - started }),
    })
    const out = await compose(cfg.stackDir, ['up', '-d', ...args], { timeout: '60m', nothrow: true }).finally(
      stop,
    )
    if (out.ok) return
    if (attempt >= attempts)
      throw new RuntimeFailure(
        `docker compose up -d ${args.join(' ')} failed ${attempts} times: ${lastLine(out)}`,
        'check the network (image pulls) and the message above, then run up again',
      )
    opts.log(`docker compose up failed (${lastLine(out)}); retry ${attempt} of ${attempts - 1} shortly`)
    await sleep(backoff * attempt)
  }
}

export async function startDataStores(cfg: Config, opts: StartOptions): Promise<string[]> {
  const stores = dataStoreServices(opts.enabledServices)
  if (stores.length === 0) return stores
  opts.log(`starting the data stores: ${stores.join(', ')}`)
  await composeUp(cfg, stores, 'starting the data stores (the first start pulls images)', opts)
  return stores
}

export async function startWebAlone(cfg: Config, opts: StartOptions): Promise<string[]> {
  const services = webAloneServices(opts.enabledServices)
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

export type StartResult =
  | { ok: true; elapsedMs: number }
  | {
      ok: false
      phase: 'migrations' | 'health'
      last: ProbeResult | undefined
      /** The services that should be running at that point. */
      expected: string[]
      timeoutMs: number
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
  if (!healthy.ok)
    return { ok: false, phase: 'health', last: healthy.last, expected: opts.enabledServices, timeoutMs }
  return { ok: true, elapsedMs: Date.now() - waitStarted }
}

// ---------------------------------------------------------------------------------------------
// What to show when the wait times out: services not running or restarting, with their logs.

export interface StuckService {
  service: string
  problem: string
}

/** `docker inspect` output, abridged to the fields read here. */
export interface InspectEntry {
  Name: string
  RestartCount?: number
  State?: { Status?: string; ExitCode?: number; OOMKilled?: boolean }
}

/** Pure: which expected services are not running, or keep restarting. */
export function findStuckServices(
  expected: string[],
  ps: ComposePsEntry[],
  inspected: InspectEntry[],
): StuckService[] {
  const byName = new Map(inspected.map((i) => [i.Name.replace(/^\//, ''), i]))
  const stuck: StuckService[] = []
  for (const service of expected) {
    const containers = ps.filter((p) => p.Service === service)
    if (containers.length === 0) {
      if (!ONE_SHOT.includes(service)) stuck.push({ service, problem: 'has no container' })
      continue
    }
    for (const c of containers) {
      const info = byName.get(c.Name)
      const restarts = info?.RestartCount ?? 0
      const oom = info?.State?.OOMKilled ? ', OOM-killed' : ''
      const exitCode = info?.State?.ExitCode ?? c.ExitCode
      if (c.State === 'restarting' || (c.State === 'running' && restarts > 0))
        stuck.push({
          service,
          problem: `keeps restarting (${restarts} restarts, last exit ${exitCode}${oom})`,
        })
      else if (c.State === 'exited' && !(exitCode === 0 && ONE_SHOT.includes(service)))
        stuck.push({ service, problem: `exited with code ${exitCode}${oom}` })
      else if (c.State !== 'running' && c.State !== 'exited')
        stuck.push({ service, problem: `is ${c.State}` })
      else if (c.Health === 'unhealthy') stuck.push({ service, problem: 'is running but unhealthy' })
    }
  }
  return stuck
}

/** Lines describing the stuck services, each followed by its last log lines. Never throws. */
export async function describeStuckServices(cfg: Config, expected: string[], tail = 15): Promise<string[]> {
  let ps: ComposePsEntry[] = []
  try {
    ps = await composePs(cfg.stackDir, { timeout: '20s' })
  } catch (e) {
    return [`could not list the containers: ${(e as Error).message.split('\n')[0]}`]
  }
  let inspected: InspectEntry[] = []
  if (ps.length) {
    const out = await docker(['inspect', ...ps.map((p) => p.Name)], { timeout: '20s', nothrow: true })
    try {
      inspected = JSON.parse(out.stdout) as InspectEntry[]
    } catch {
      inspected = []
    }
  }
  const stuck = findStuckServices(expected, ps, inspected)
  if (stuck.length === 0) return ['every expected service is running; the problem is elsewhere (see below)']
  const lines: string[] = []
  for (const s of stuck) {
    lines.push(`${s.service} ${s.problem}; its last log lines:`)
    const logs = await compose(
      cfg.stackDir,
      ['logs', '--no-color', '--no-log-prefix', '--tail', String(tail), s.service],
      {
        timeout: '20s',
        nothrow: true,
      },
    )
    const text = logs.stdout.trim()
    lines.push(...(text ? text.split('\n').map((l) => `    ${l}`) : ['    (no log output)']))
  }
  return lines
}
