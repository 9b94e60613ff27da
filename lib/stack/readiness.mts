// "Healthy" means the whole stack: /_health says only that web has migrated, while plugins,
// capture or the worker may be crash-looping. Every expected service must be running (healthy
// where it has a healthcheck; a one-shot service exited 0) and stay so for a settle period.
import { sleep } from 'zx'
import { compose } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { startProgress } from '../core/health.mts'
import {
  type Condition,
  type ContainerInfo,
  listContainers,
  type RestartCounts,
  serviceStates,
} from './containers.mts'

export type Readiness = 'ready' | 'pending' | 'failed'

export interface ServiceReadiness {
  service: string
  readiness: Readiness
  /** What is wrong or awaited, e.g. `exited with code 137, OOM-killed`, `health: starting`. */
  text: string
}

/**
 * Pure: each expected service's readiness from its containers. `before` are the restart counts
 * at the start of the settle period: a container that restarted since then has failed.
 */
export function serviceReadiness(
  expected: string[],
  oneShot: string[],
  containers: ContainerInfo[],
  before: RestartCounts = {},
): ServiceReadiness[] {
  return serviceStates(expected, oneShot, containers, before).map(({ service, container: c, condition }) => {
    if (!c || !condition) return { service, readiness: 'failed', text: 'has no container' }
    return { service, ...readinessOf(c, condition, before[service]) }
  })
}

function readinessOf(
  c: ContainerInfo,
  condition: Condition,
  before: { id: string; count: number } | undefined,
): Omit<ServiceReadiness, 'service'> {
  const oom = c.oomKilled ? ', OOM-killed' : ''
  switch (condition) {
    case 'running':
    case 'oom-restarted':
      return { readiness: 'ready', text: 'running' }
    case 'finished':
      return { readiness: 'ready', text: 'finished (exit 0)' }
    case 'starting':
      return { readiness: 'pending', text: 'health: starting' }
    case 'created':
      return { readiness: 'pending', text: 'created, not started yet' }
    case 'one-shot-running':
      return { readiness: 'pending', text: 'still running (a one-shot service)' }
    case 'restarting':
      return {
        readiness: 'failed',
        text: `keeps restarting (${c.restartCount} restarts, last exit ${c.exitCode}${oom})`,
      }
    case 'unhealthy':
      return { readiness: 'failed', text: 'is running but unhealthy' }
    case 'restarted':
      return {
        readiness: 'failed',
        text: `restarted ${c.restartCount - (before?.count ?? 0)} times while settling${oom}`,
      }
    default:
      return {
        readiness: 'failed',
        text:
          c.state === 'exited' || c.state === 'dead'
            ? `exited with code ${c.exitCode}${oom}`
            : `is ${c.state}`,
      }
  }
}

export interface ServicesWaitOptions {
  expected: string[]
  oneShot: string[]
  timeoutMs: number
  /** Every service must stay ready this long (restart counts unchanged). */
  settleMs: number
  pollIntervalMs?: number
  tty?: boolean
}

export type ServicesResult = { ok: true } | { ok: false; problems: ServiceReadiness[] }

/**
 * Waits until every expected service is ready and has stayed so for `settleMs`; fails at once
 * when one fails, and with the pending ones when `timeoutMs` passes.
 */
export async function waitForServices(cfg: Config, o: ServicesWaitOptions): Promise<ServicesResult> {
  const deadline = Date.now() + o.timeoutMs
  const interval = o.pollIntervalMs ?? 2000
  let settledSince: number | undefined
  let counts: RestartCounts = {}
  let last: ServiceReadiness[] = []
  const stop = startProgress({
    tty: o.tty,
    snapshot: () => ({
      label:
        settledSince === undefined ? 'waiting for every service' : 'checking that every service stays up',
      elapsedMs: o.timeoutMs - Math.max(0, deadline - Date.now()),
      running: last.filter((r) => r.readiness === 'ready').length,
      total: o.expected.length,
    }),
  })
  try {
    for (;;) {
      const containers = await listContainers(cfg.stackDir, '30s').catch(() => undefined)
      if (containers) {
        last = serviceReadiness(o.expected, o.oneShot, containers, settledSince === undefined ? {} : counts)
        const failed = last.filter((r) => r.readiness === 'failed')
        if (failed.length) return { ok: false, problems: failed }
        if (last.every((r) => r.readiness === 'ready')) {
          if (settledSince === undefined) {
            settledSince = Date.now()
            counts = Object.fromEntries(
              containers.map((c) => [c.service, { id: c.id, count: c.restartCount }]),
            )
          }
          if (Date.now() - settledSince >= o.settleMs) return { ok: true }
        } else settledSince = undefined
      }
      // Once every service is ready the settle period runs its course; the deadline is for getting there.
      if (Date.now() >= deadline && settledSince === undefined)
        return { ok: false, problems: last.filter((r) => r.readiness !== 'ready') }
      await sleep(Math.min(interval, Math.max(0, deadline - Date.now())))
    }
  } finally {
    stop()
  }
}

/** Lines describing the services that are not ready, each followed by its last log lines. Never throws. */
export async function describeStuckServices(
  cfg: Config,
  expected: string[],
  oneShot: string[],
  tail = 15,
): Promise<string[]> {
  let containers: ContainerInfo[]
  try {
    containers = await listContainers(cfg.stackDir, '20s')
  } catch (e) {
    return [`could not list the containers: ${(e as Error).message.split('\n')[0]}`]
  }
  const stuck = serviceReadiness(expected, oneShot, containers).filter((r) => r.readiness !== 'ready')
  if (stuck.length === 0) return ['every expected service is running; the problem is elsewhere (see below)']
  const lines: string[] = []
  for (const s of stuck) {
    lines.push(`${s.service} ${s.text}; its last log lines:`)
    const logs = await compose(
      cfg.stackDir,
      ['logs', '--no-color', '--no-log-prefix', '--tail', String(tail), s.service],
      { timeout: '20s', nothrow: true },
    )
    const text = logs.stdout.trim()
    lines.push(...(text ? text.split('\n').map((l) => `    ${l}`) : ['    (no log output)']))
  }
  return lines
}
