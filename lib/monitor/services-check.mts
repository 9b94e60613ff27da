// The health check's view of the stack's containers: every expected service runs (one-shots may
// have exited 0), none restarts in a loop or was OOM-killed; with --heal, exited and unhealthy
// services are restarted at most once an hour.
// Bundled into the health check (plain node 18+): node: modules only, no zx, no yaml.
import { compose, type StackServices, stackServices } from '../core/docker.mts'
import { CommandFailed, describeExit, lastLine } from '../core/exec.mts'
import {
  type ContainerInfo,
  composeKey,
  evaluateServices,
  inspectKnown,
  listContainers,
  type ServiceProblem,
} from '../stack/containers.mts'
import type { RunBudget } from './monitor-run.mts'
import type { CheckResult } from './report.mts'
import type { MonitorState } from './state.mts'

export const HEAL_INTERVAL_MS = 3_600_000

/** The last line docker said, for an UNKNOWN check. */
export function dockerProblem(e: unknown): string {
  return e instanceof CommandFailed ? lastLine(e.result) || describeExit(e.result) : (e as Error).message
}

export function dockerUnanswered(name: string, e: unknown): CheckResult {
  return { name, status: 'UNKNOWN', summary: `docker does not answer: ${dockerProblem(e)}` }
}

function isWarning(p: ServiceProblem): boolean {
  return p.kind === 'restarts-growing' || (p.kind === 'oom-killed' && !p.healable)
}

/** One check for all services: CRITICAL unless every problem is only worth a warning. */
export function servicesCheck(problems: ServiceProblem[], running: number, healed: string[]): CheckResult {
  if (problems.length === 0) return { name: 'services', status: 'OK', summary: `${running} running` }
  const text = problems
    .map((p) => `${p.text}${healed.includes(p.service) ? ' (restarted by --heal)' : ''}`)
    .join('; ')
  return { name: 'services', status: problems.every(isWarning) ? 'WARNING' : 'CRITICAL', summary: text }
}

/**
 * The services the stack runs, as Compose merges its files (profiles and replicas included),
 * asked again only when a compose file or STACK_DIR/.env changed; undefined without a stack.
 */
export async function cachedServices(
  state: MonitorState,
  stackDir: string,
  budget: RunBudget,
): Promise<StackServices | undefined> {
  const key = composeKey(stackDir)
  if (!key) return undefined
  if (state.services?.key === key) return state.services
  const services = await stackServices(stackDir, budget.callMs())
  state.services = { key, ...services }
  return services
}

export type HealPlan = { service: string; verb: 'up' | 'restart' } | { service: string; restartedAt: string }

/**
 * What --heal does for each healable service: `up` for a missing one, `restart` otherwise;
 * nothing (`restartedAt`) for one it restarted within the last hour.
 */
export function planHeals(problems: ServiceProblem[], heals: MonitorState['heals'], now: number): HealPlan[] {
  const due = [...new Set(problems.filter((p) => p.healable).map((p) => p.service))]
  return due.map((service) => {
    const last = (heals[service] ?? []).at(-1)
    if (last && now - Date.parse(last) < HEAL_INTERVAL_MS) return { service, restartedAt: last }
    const missing = problems.some((p) => p.service === service && p.kind === 'missing')
    return { service, verb: missing ? 'up' : 'restart' }
  })
}

/** Restarts what planHeals says; records each restart in `state.heals`. */
async function heal(
  stackDir: string,
  budget: RunBudget,
  state: MonitorState,
  problems: ServiceProblem[],
): Promise<CheckResult[]> {
  const now = Date.now()
  const results: CheckResult[] = []
  for (const plan of planHeals(problems, state.heals, now)) {
    const name = `heal ${plan.service}`
    if ('restartedAt' in plan) {
      results.push({
        name,
        status: 'WARNING',
        summary: `not restarted: already restarted at ${plan.restartedAt}`,
      })
      continue
    }
    const args = plan.verb === 'up' ? ['up', '-d', plan.service] : ['restart', plan.service]
    const res = await compose(stackDir, args, { timeout: budget.callMs(), nothrow: true })
    state.heals[plan.service] = [...(state.heals[plan.service] ?? []), new Date(now).toISOString()].slice(-10)
    results.push({
      name,
      status: 'WARNING',
      summary: res.ok ? `restarted (docker compose ${plan.verb})` : `restart failed (${describeExit(res)})`,
    })
  }
  return results
}

/** The stack's containers now: one `docker inspect` of those seen last time, else a listing. */
async function currentContainers(
  stackDir: string,
  budget: RunBudget,
  state: MonitorState,
  services: StackServices,
): Promise<ContainerInfo[]> {
  const containers =
    (await inspectKnown(state.containerNames ?? [], services, budget.callMs())) ??
    (await listContainers(stackDir, budget.callMs()))
  state.containerNames = containers.map((c) => c.name)
  return containers
}

/** The `services` check (and one per service --heal restarted); updates the restart counts in `state`. */
export async function containerChecks(
  stackDir: string,
  budget: RunBudget,
  state: MonitorState,
  services: StackServices | Error | undefined,
  doHeal: boolean,
): Promise<CheckResult[]> {
  if (services instanceof Error) return [dockerUnanswered('services', services)]
  if (!services)
    return [
      {
        name: 'services',
        status: 'UNKNOWN',
        summary: `no stack in ${stackDir}: run npx tsx scripts/up.mts first`,
      },
    ]
  let containers: ContainerInfo[]
  try {
    containers = await currentContainers(stackDir, budget, state, services)
  } catch (e) {
    return [dockerUnanswered('services', e)]
  }
  const evaluation = evaluateServices(services.expected, services.oneShot, containers, state.restartCounts)
  state.restartCounts = evaluation.restartCounts
  const healResults = doHeal ? await heal(stackDir, budget, state, evaluation.problems) : []
  const healed = healResults.filter((r) => r.summary.startsWith('restarted')).map((r) => r.name.slice(5))
  return [servicesCheck(evaluation.problems, evaluation.running, healed), ...healResults]
}
