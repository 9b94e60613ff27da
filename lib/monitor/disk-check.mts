// The free disk of STACK_DIR and of Docker's data (inside Docker Desktop's VM too), against the
// --disk-warning and --disk-critical thresholds that health and doctor share.
// Bundled into the health check (plain node 18+): node: modules only, no zx, no yaml.
import type { FlagSpec } from '../core/cli.mts'
import {
  type DiskSpace,
  type DiskThresholds,
  type DockerDataInfo,
  describeSpace,
  deviceOf,
  diskStatus,
  dockerDataInfo,
  dockerDisk,
  parseThreshold,
  spaceAt,
} from '../core/disk.mts'
import { docker } from '../core/docker.mts'
import type { RunBudget } from './monitor-run.mts'
import type { CheckResult } from './report.mts'
import { dockerUnanswered } from './services-check.mts'
import type { MonitorState } from './state.mts'

export const DISK_WARNING_FLAG = {
  type: 'string',
  env: 'HEALTH_DISK_WARNING',
  default: '15%,10GiB',
  help: 'WARNING when less is free (share, size or both) on STACK_DIR or Docker’s disk',
} as const satisfies FlagSpec

export const DISK_CRITICAL_FLAG = {
  type: 'string',
  env: 'HEALTH_DISK_CRITICAL',
  default: '5%,3GiB',
  help: 'CRITICAL when less is free',
} as const satisfies FlagSpec

/** The thresholds of --disk-warning and --disk-critical; bad input when one does not parse. */
export function diskThresholds(flags: { 'disk-warning': string; 'disk-critical': string }): DiskThresholds {
  return {
    warning: parseThreshold(flags['disk-warning'], '--disk-warning'),
    critical: parseThreshold(flags['disk-critical'], '--disk-critical'),
  }
}

/** How long `docker info`'s answer about where Docker keeps its data is reused. */
export const DOCKER_DATA_TTL_MS = 6 * 3_600_000

type CachedDockerData = NonNullable<MonitorState['dockerData']>

/** Where Docker keeps its data: asked of `docker info` now and then, reused in between. */
async function dockerData(budget: RunBudget, state: MonitorState): Promise<CachedDockerData> {
  const cached = state.dockerData
  if (cached && Date.now() - Date.parse(cached.time) < DOCKER_DATA_TTL_MS) return cached
  const out = await docker(['info', '--format', '{{json .}}'], { timeout: budget.callMs() })
  const data = dockerDataInfo(JSON.parse(out.stdout) as { DockerRootDir?: string; OperatingSystem?: string })
  state.dockerData = { ...data, time: new Date().toISOString() }
  return state.dockerData
}

export function spaceCheck(name: string, where: string, space: DiskSpace, t: DiskThresholds): CheckResult {
  const status = diskStatus(space, t)
  const fix = status === 'OK' ? '' : ': free some (npx tsx scripts/doctor.mts names the biggest consumers)'
  return { name, status, summary: `${describeSpace(space)} on ${where}${fix}` }
}

/** The checks for STACK_DIR's disk and Docker's: one when they are the same filesystem. */
export function diskChecksFor(
  stackDir: string,
  stack: DiskSpace | undefined,
  data: DockerDataInfo | Error,
  t: DiskThresholds,
): CheckResult[] {
  let dockerSide: CheckResult
  if (data instanceof Error) dockerSide = dockerUnanswered('docker-disk', data)
  else {
    const d = dockerDisk(data)
    const shared = !data.desktop && 'space' in d && deviceOf(data.rootDir) === deviceOf(stackDir)
    if (shared && stack) return [spaceCheck('disk', `${d.where} and STACK_DIR`, stack, t)]
    dockerSide =
      'space' in d
        ? spaceCheck('docker-disk', d.where, d.space, t)
        : { name: 'docker-disk', status: 'UNKNOWN', summary: d.unknown }
  }
  return [...(stack ? [spaceCheck('stack-disk', stackDir, stack, t)] : []), dockerSide]
}

export async function diskChecks(
  stackDir: string,
  t: DiskThresholds,
  budget: RunBudget,
  state: MonitorState,
): Promise<CheckResult[]> {
  const stack = spaceAt(stackDir)
  let data: DockerDataInfo | Error
  try {
    data = await dockerData(budget, state)
  } catch (e) {
    data = e as Error
  }
  return diskChecksFor(stackDir, stack, data, t)
}
