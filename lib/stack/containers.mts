// The stack's containers as up, health and doctor see them: one `docker compose ps` and one
// `docker inspect` of all containers (two docker calls, whatever the number of services), and
// the one classification of a container's state they all use.
import fs from 'node:fs'
import path from 'node:path'
import { composePs, docker, type StackServices } from '../core/docker.mts'
import { CommandFailed, type Duration } from '../core/exec.mts'

export interface ContainerInfo {
  service: string
  name: string
  /** running, restarting, exited, created, paused, dead */
  state: string
  exitCode: number
  /** healthy, unhealthy, starting, or '' without a healthcheck */
  health: string
  restartCount: number
  oomKilled: boolean
  /** Container id (restart counts restart from 0 on a new container). */
  id: string
}

/** `docker inspect` output, abridged to what is read here. */
interface InspectEntry {
  Id: string
  Name: string
  RestartCount?: number
  State?: {
    Status?: string
    OOMKilled?: boolean
    ExitCode?: number
    Health?: { Status?: string }
  }
  Config?: { Labels?: Record<string, string> }
}

function parseInspect(stdout: string): InspectEntry[] {
  try {
    const parsed = JSON.parse(stdout) as InspectEntry[]
    return Array.isArray(parsed) ? parsed : []
  } catch {
    return []
  }
}

function fromInspect(i: InspectEntry): ContainerInfo | undefined {
  const service = i.Config?.Labels?.['com.docker.compose.service']
  if (!service) return undefined
  return {
    service,
    name: i.Name.replace(/^\//, ''),
    state: i.State?.Status ?? 'unknown',
    exitCode: i.State?.ExitCode ?? 0,
    health: i.State?.Health?.Status ?? '',
    restartCount: i.RestartCount ?? 0,
    oomKilled: i.State?.OOMKilled ?? false,
    id: i.Id,
  }
}

/**
 * The cheap path for a run every few minutes: one `docker inspect` of the containers the last
 * run saw. Undefined when that is not enough (a container is gone, or an expected service has
 * none among them): then list them with `listContainers`. A docker that does not answer in time
 * throws: a second call would only hang as long again.
 */
export async function inspectKnown(
  names: string[],
  services: StackServices,
  timeout: Duration = '15s',
): Promise<ContainerInfo[] | undefined> {
  if (names.length === 0) return undefined
  const out = await docker(['inspect', ...names], { timeout, nothrow: true })
  if (out.timedOut) throw new CommandFailed(out)
  if (!out.ok) return undefined
  const found = parseInspect(out.stdout).map(fromInspect)
  if (found.length !== names.length || found.some((c) => !c)) return undefined
  const containers = found as ContainerInfo[]
  const seen = new Set(containers.map((c) => c.service))
  if (services.expected.some((s) => !seen.has(s) && !services.oneShot.includes(s))) return undefined
  return containers
}

/** Every container of the project: `docker compose ps --all`, then one `docker inspect` of them all. */
export async function listContainers(stackDir: string, timeout: Duration = '15s'): Promise<ContainerInfo[]> {
  const ps = await composePs(stackDir, { timeout })
  if (ps.length === 0) return []
  const names = ps.map((p) => p.Name)
  const out = await docker(['inspect', ...names], { timeout, nothrow: true })
  // A container removed between the two calls: fall back to what compose ps says.
  const inspected = parseInspect(out.stdout)
  const byName = new Map(inspected.map((i) => [i.Name.replace(/^\//, ''), i]))
  return ps.map((p) => {
    const i = byName.get(p.Name)
    return {
      service: p.Service,
      name: p.Name,
      state: i?.State?.Status ?? p.State,
      exitCode: i?.State?.ExitCode ?? p.ExitCode ?? 0,
      health: i?.State?.Health?.Status ?? p.Health ?? '',
      restartCount: i?.RestartCount ?? 0,
      oomKilled: i?.State?.OOMKilled ?? false,
      id: i?.Id ?? (p as { ID?: string }).ID ?? p.Name,
    }
  })
}

// ---------------------------------------------------------------------------------------------
// One classification of a container's state, for up's readiness, health's checks and doctor's
// findings alike; each words it its own way.

/** Restart counts by service at some earlier moment (a new container counts from 0 again). */
export type RestartCounts = Record<string, { id: string; count: number }>

export type Condition =
  /** Running, healthy where it has a healthcheck. */
  | 'running'
  /** Running, its healthcheck not decided yet. */
  | 'starting'
  /** Created, never started. */
  | 'created'
  /** A one-shot service that exited 0, as it should. */
  | 'finished'
  /** A one-shot service still at work. */
  | 'one-shot-running'
  | 'exited'
  | 'oom-killed'
  | 'restarting'
  | 'unhealthy'
  /** Running again after the kernel killed it for memory. */
  | 'oom-restarted'
  /** Running, but restarted since the counts it is compared with. */
  | 'restarted'

/**
 * The one classification of a container (pure). `oneShot`: others wait for it to complete
 * (kafka-init), so exit 0 is its success. `before`: the service's restart count at an earlier
 * moment; a higher count on the same container means it restarted since.
 */
export function containerCondition(
  c: ContainerInfo,
  oneShot: boolean,
  before?: { id: string; count: number },
): Condition {
  if (c.state === 'exited' || c.state === 'dead') {
    if (oneShot && c.exitCode === 0 && !c.oomKilled) return 'finished'
    return c.oomKilled ? 'oom-killed' : 'exited'
  }
  if (c.state === 'restarting') return 'restarting'
  if (c.state === 'created') return 'created'
  if (c.state !== 'running') return 'exited'
  if (c.health === 'unhealthy') return 'unhealthy'
  if (before && before.id === c.id && c.restartCount > before.count) return 'restarted'
  if (c.oomKilled) return 'oom-restarted'
  if (c.health === 'starting') return 'starting'
  return oneShot ? 'one-shot-running' : 'running'
}

export interface ServiceState {
  service: string
  /** Undefined: the service has no container. */
  container?: ContainerInfo
  condition?: Condition
}

/** Each expected service's containers (or the lack of one) with their condition. Pure. */
export function serviceStates(
  expected: string[],
  oneShot: string[],
  containers: ContainerInfo[],
  before: RestartCounts = {},
): ServiceState[] {
  return expected.flatMap((service): ServiceState[] => {
    const mine = containers.filter((c) => c.service === service)
    if (mine.length === 0) return [{ service }]
    return mine.map((c) => ({
      service,
      container: c,
      condition: containerCondition(c, oneShot.includes(service), before[service]),
    }))
  })
}

/** A cheap key that changes whenever the compose files or STACK_DIR's .env do (for caching stackServices). */
export function composeKey(stackDir: string): string | undefined {
  const parts: string[] = []
  for (const f of [
    'docker-compose.yml',
    'docker-compose.base.yml',
    'docker-compose.override.yml',
    'docker-compose.local.yml',
    '.env',
  ]) {
    try {
      const s = fs.statSync(path.join(stackDir, f))
      parts.push(`${f}:${s.size}:${s.mtimeMs}`)
    } catch {
      if (f === 'docker-compose.yml') return undefined
    }
  }
  return parts.join('|')
}

export type ProblemKind =
  | 'missing'
  | 'exited'
  | 'restarting'
  | 'unhealthy'
  | 'oom-killed'
  | 'restarts-growing'

export interface ServiceProblem {
  service: string
  kind: ProblemKind
  text: string
  /** --heal may restart it (exited or unhealthy). */
  healable: boolean
}

export interface ServiceEvaluation {
  problems: ServiceProblem[]
  running: number
  /** Restart counts to remember for the next run. */
  restartCounts: RestartCounts
}

/** Compares what runs with what should run, and restart counts with the last run's. Pure. */
export function evaluateServices(
  expected: string[],
  oneShot: string[],
  containers: ContainerInfo[],
  previous: RestartCounts,
): ServiceEvaluation {
  const problems: ServiceProblem[] = []
  const restartCounts: RestartCounts = {}
  let running = 0
  for (const st of serviceStates(expected, oneShot, containers, previous)) {
    const { service, container: c } = st
    if (!c) {
      // A one-shot service that did its work may have been removed since.
      if (!oneShot.includes(service))
        problems.push({ service, kind: 'missing', text: `${service} has no container`, healable: true })
      continue
    }
    restartCounts[service] = { id: c.id, count: c.restartCount }
    if (c.state === 'running') running++
    const problem = healthProblem(c, st.condition!, previous[service])
    if (problem) problems.push(problem)
  }
  return { problems, running, restartCounts }
}

function healthProblem(
  c: ContainerInfo,
  condition: Condition,
  before: { id: string; count: number } | undefined,
): ServiceProblem | undefined {
  const s = c.service
  switch (condition) {
    case 'exited':
    case 'created':
      return { service: s, kind: 'exited', text: `${s} exited (${c.exitCode})`, healable: true }
    case 'oom-killed':
      return {
        service: s,
        kind: 'oom-killed',
        text: `${s} exited (${c.exitCode}, OOMKilled)`,
        healable: true,
      }
    case 'restarting':
      return {
        service: s,
        kind: 'restarting',
        text: `${s} keeps restarting (exit ${c.exitCode}, ${c.restartCount} restarts)`,
        healable: false,
      }
    case 'unhealthy':
      return { service: s, kind: 'unhealthy', text: `${s} is unhealthy`, healable: true }
    case 'oom-restarted':
      return { service: s, kind: 'oom-killed', text: `${s} was OOM-killed and restarted`, healable: false }
    case 'restarted': {
      const n = c.restartCount - (before?.count ?? 0)
      return {
        service: s,
        kind: 'restarts-growing',
        text: `${s} restarted ${n} time${n === 1 ? '' : 's'} since the last run`,
        healable: false,
      }
    }
    default:
      return undefined
  }
}
