// The stack's containers as health and doctor see them: one `docker compose ps` and one
// `docker inspect` of all containers (two docker calls, whatever the number of services).
import fs from 'node:fs'
import path from 'node:path'
import { composePs, docker } from './docker.mts'
import { CommandFailed, type Duration } from './exec.mts'

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
  expected: string[],
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
  if (expected.some((s) => !seen.has(s) && !ONE_SHOT_SERVICES.includes(s))) return undefined
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

/** Services that run once and exit 0 by design (kafka-init creates the topics). */
export const ONE_SHOT_SERVICES = ['kafka-init']

/**
 * The services the stack should run: those the compose file defines, minus DISABLED_SERVICES,
 * minus those with `deploy.replicas: 0` (in the file or in the base service it extends).
 */
export async function expectedServices(stackDir: string, disabled: string[]): Promise<string[]> {
  // Loaded on demand: the scheduled health check reads the compose file only when it changed.
  const { parse } = await import('yaml')
  const readCompose = (file: string): { services?: unknown } | undefined => {
    try {
      return parse(fs.readFileSync(file, 'utf8')) as { services?: unknown }
    } catch {
      return undefined
    }
  }
  const file = path.join(stackDir, 'docker-compose.yml')
  const doc = readCompose(file)
  const services = (doc?.services ?? {}) as Record<string, ComposeService>
  const bases = new Map<string, Record<string, ComposeService>>()
  const baseOf = (svc: ComposeService): ComposeService | undefined => {
    const ext = svc?.extends
    if (!ext?.file || !ext.service) return undefined
    const f = path.resolve(stackDir, ext.file)
    if (!bases.has(f)) bases.set(f, (readCompose(f)?.services ?? {}) as Record<string, ComposeService>)
    return bases.get(f)?.[ext.service]
  }
  return Object.keys(services).filter((name) => {
    if (disabled.includes(name)) return false
    const svc = services[name]!
    const replicas = svc?.deploy?.replicas ?? baseOf(svc)?.deploy?.replicas
    return replicas !== 0
  })
}

interface ComposeService {
  extends?: { file?: string; service?: string }
  deploy?: { replicas?: number }
}

/** A cheap key that changes whenever the compose files do (for caching expectedServices). */
export function composeKey(stackDir: string, disabled: string[]): string | undefined {
  const parts: string[] = []
  for (const f of ['docker-compose.yml', 'docker-compose.base.yml', 'docker-compose.override.yml']) {
    try {
      const s = fs.statSync(path.join(stackDir, f))
      parts.push(`${f}:${s.size}:${s.mtimeMs}`)
    } catch {
      if (f === 'docker-compose.yml') return undefined
    }
  }
  return `${parts.join('|')}|${disabled.join(',')}`
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
  restartCounts: Record<string, { id: string; count: number }>
}

/** Compares what runs with what should run, and restart counts with the last run's. Pure. */
export function evaluateServices(
  expected: string[],
  containers: ContainerInfo[],
  previous: Record<string, { id: string; count: number }>,
): ServiceEvaluation {
  const problems: ServiceProblem[] = []
  const restartCounts: Record<string, { id: string; count: number }> = {}
  let running = 0
  const byService = new Map<string, ContainerInfo[]>()
  for (const c of containers) byService.set(c.service, [...(byService.get(c.service) ?? []), c])
  for (const service of expected) {
    const list = byService.get(service) ?? []
    if (list.length === 0) {
      if (!ONE_SHOT_SERVICES.includes(service))
        problems.push({ service, kind: 'missing', text: `${service} has no container`, healable: true })
      continue
    }
    for (const c of list) {
      restartCounts[service] = { id: c.id, count: c.restartCount }
      const problem = containerProblem(c, previous[service])
      if (problem) problems.push(problem)
      if (c.state === 'running') running++
    }
  }
  return { problems, running, restartCounts }
}

function containerProblem(
  c: ContainerInfo,
  before: { id: string; count: number } | undefined,
): ServiceProblem | undefined {
  const s = c.service
  if (c.state === 'exited' || c.state === 'dead' || c.state === 'created') {
    if (c.state === 'exited' && c.exitCode === 0 && ONE_SHOT_SERVICES.includes(s)) return undefined
    const oom = c.oomKilled ? ', OOMKilled' : ''
    return {
      service: s,
      kind: c.oomKilled ? 'oom-killed' : 'exited',
      text: `${s} exited (${c.exitCode}${oom})`,
      healable: true,
    }
  }
  if (c.state === 'restarting')
    return {
      service: s,
      kind: 'restarting',
      text: `${s} keeps restarting (exit ${c.exitCode}, ${c.restartCount} restarts)`,
      healable: false,
    }
  if (c.health === 'unhealthy')
    return { service: s, kind: 'unhealthy', text: `${s} is unhealthy`, healable: true }
  if (c.oomKilled)
    return { service: s, kind: 'oom-killed', text: `${s} was OOM-killed and restarted`, healable: false }
  if (before && before.id === c.id && c.restartCount > before.count) {
    const n = c.restartCount - before.count
    return {
      service: s,
      kind: 'restarts-growing',
      text: `${s} restarted ${n} time${n === 1 ? '' : 's'} since the last run`,
      healable: false,
    }
  }
  return undefined
}
