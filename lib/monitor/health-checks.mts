// What the home health check (scripts/health.mts) checks: local /_health, the capture path through
// the local proxy, the stack's containers, https://DOMAIN/_health with its certificate, and the
// free disk; each bounded by the run's time limit.
// Bundled into the health check (plain node 18+): node: modules only, no zx, no yaml.
import path from 'node:path'
import type { DiskThresholds } from '../core/disk.mts'
import type { Config } from '../core/env.mts'
import { probeRoutes } from '../stack/routes.mts'
import { diskChecks, diskThresholds } from './disk-check.mts'
import { bounded, type RunBudget, runTimeoutMs } from './monitor-run.mts'
import { type NotifySettings, notifySettings } from './notify.mts'
import { checkHealthUrl, checkHttpUrl, readCaFile, routeChecks } from './probe.mts'
import type { CheckResult } from './report.mts'
import { cachedServices, containerChecks } from './services-check.mts'
import type { MonitorState } from './state.mts'

/** The health check's flags that say what to check (as its spec types them). */
export interface HealthFlags {
  timeout: string
  'state-file'?: string
  'local-url'?: string
  'public-url'?: string
  'ca-file'?: string
  'disk-warning': string
  'disk-critical': string
  heal: boolean
}

export interface HealthSettings {
  stackDir: string
  runMs: number
  stateFile: string
  localUrl: string
  publicUrl?: string
  ca?: string
  disk: DiskThresholds
  heal: boolean
  notify: Omit<NotifySettings, 'timeoutMs'>
}

/** The settings of one run from the flags and the configuration; bad input throws a UsageError. */
export function healthSettings(flags: HealthFlags, cfg: Config): HealthSettings {
  const runMs = runTimeoutMs(flags.timeout)
  checkHttpUrl(flags['local-url'], '--local-url')
  checkHttpUrl(flags['public-url'], '--public-url')
  const ca = readCaFile(flags['ca-file'])
  const publicDomain = cfg.domain !== 'localhost'
  return {
    stackDir: cfg.stackDir,
    runMs,
    stateFile: path.resolve(flags['state-file'] ?? path.join(cfg.stackDir, 'health-state.json')),
    localUrl: flags['local-url'] ?? `http://127.0.0.1:${cfg.proxyPort}/_health`,
    publicUrl: flags['public-url'] ?? (publicDomain ? `https://${cfg.domain}/_health` : undefined),
    ca,
    disk: diskThresholds(flags),
    heal: flags.heal,
    notify: notifySettings(cfg.raw, ca),
  }
}

/** One check per route group of the enabled services, probed through the local proxy. */
async function routes(
  localUrl: string,
  budget: RunBudget,
  expected: string[] | undefined,
): Promise<CheckResult[]> {
  if (!expected) return []
  const baseUrl = new URL(localUrl).origin
  return routeChecks(
    await probeRoutes({ baseUrl, enabledServices: expected, timeoutMs: budget.callMs(5000) }),
  )
}

/** Every check of one run, each ending by the budget's deadline (else it is UNKNOWN). */
export async function healthChecks(
  s: HealthSettings,
  budget: RunBudget,
  state: MonitorState,
): Promise<CheckResult[]> {
  const probeOpts = () => ({ timeoutMs: budget.callMs(), ca: s.ca })
  const end = budget.checksEnd
  // Both the route and the container checks need the services; asking docker for them is bounded too.
  const services = cachedServices(state, s.stackDir, budget).catch((e: Error) => e)
  const expected = async () => {
    const known = await services
    return known instanceof Error ? undefined : known?.expected
  }
  const publicUrl = s.publicUrl
  const groups = await Promise.all([
    bounded('local', end, () => checkHealthUrl('local', s.localUrl, probeOpts())),
    bounded('routes', end, async () => routes(s.localUrl, budget, await expected())),
    bounded('services', end, async () => containerChecks(s.stackDir, budget, state, await services, s.heal)),
    ...(publicUrl ? [bounded('public', end, () => checkHealthUrl('public', publicUrl, probeOpts()))] : []),
    bounded('disk', end, () => diskChecks(s.stackDir, s.disk, budget, state)),
  ])
  return groups.flat()
}
