// Diagnosis: pre-flight, container states, memory, disk and recent logs (doctor-logs.mts) against
// the failure catalog, turned into findings (doctor-finding.mts); the safe ones are fixed by
// doctor-fix.mts. Used by scripts/doctor.mts and by `up` when its health wait times out.

import path from 'node:path'
import { redact, UsageError } from '../core/cli.mts'
import {
  biggestConsumers,
  DEFAULT_DISK_THRESHOLDS,
  type DiskSpace,
  type DiskThresholds,
  describeSpace,
  deviceOf,
  diskStatus,
  dockerDataInfo,
  dockerDisk,
  formatSize,
  spaceAt,
} from '../core/disk.mts'
import { compose, docker, type StackServices, stackServices } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import {
  type Condition,
  type ContainerInfo,
  containerCondition,
  listContainers,
} from '../stack/containers.mts'
import { type PreflightResult, runPreflight } from '../stack/preflight.mts'
import { matchLine } from './catalog.mts'
import { diskThresholds } from './disk-check.mts'
import { addFinding, type Finding, fromSignature, redactEvidence } from './doctor-finding.mts'
import { fileFindings, logFindings, parseComposeLogs, readTail } from './doctor-logs.mts'

export interface AnalyseOptions {
  /** `docker compose logs --since` (a duration such as 1h, or an RFC 3339 time). */
  since?: string
  /** `docker compose logs --tail` per service. */
  tail?: number
  /** Other logs to scan (frpc's, nginx's error.log, certbot's). */
  logFiles?: string[]
  /** Run the pre-flight checks (default true). */
  preflight?: boolean
  /** Free disk below which pre-flight complains; a running stack needs less than a first start. */
  minFreeDiskBytes?: number
  /** When the disk counts as low (then the biggest consumers are named); as health's. */
  diskThresholds?: DiskThresholds
}

/** doctor's flags that say what to read (as its spec types them). */
export interface DoctorFlags {
  since: string
  tail: string
  'disk-warning': string
  'disk-critical': string
}

export interface DoctorReading {
  since: string
  tail: number
  diskThresholds: DiskThresholds
}

const SINCE = /^(\d+(s|m|h)|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?)$/

/** The checked flags; bad input throws a UsageError. */
export function doctorReading(flags: DoctorFlags): DoctorReading {
  const tail = Number(flags.tail)
  if (!Number.isInteger(tail) || tail < 1)
    throw new UsageError(`--tail=${flags.tail} must be a whole number above 0`)
  if (!SINCE.test(flags.since))
    throw new UsageError(`--since=${flags.since} must be a duration such as 30m or 2h, or an RFC 3339 time`)
  return { since: flags.since, tail, diskThresholds: diskThresholds(flags) }
}

// ---------------------------------------------------------------------------------------------
// Container states, as lines the catalog can match ("... exited with code 137 (OOMKilled)")

export function stateLine(c: ContainerInfo, condition: Condition): string | undefined {
  const oom = c.oomKilled ? ' (OOMKilled)' : ''
  switch (condition) {
    case 'exited':
    case 'oom-killed':
      return `${c.service} exited with code ${c.exitCode}${oom}`
    case 'restarting':
      return `${c.service} container is restarting (exit ${c.exitCode}, restarted ${c.restartCount} times)${oom}`
    case 'unhealthy':
      return `${c.service} healthcheck reports unhealthy`
    case 'oom-restarted':
      return `${c.service} container was OOMKilled and restarted`
    case 'finished':
    case 'created':
    case 'starting':
    case 'one-shot-running':
      return undefined
    default:
      // A history of restarts says something even while it runs now (the worker's, at once).
      return c.restartCount >= 3 || (c.service === 'worker' && c.restartCount > 0)
        ? `${c.service} container restarted ${c.restartCount} times`
        : undefined
  }
}

function genericStateFinding(c: ContainerInfo, line: string): Finding {
  const base = { service: c.service, evidence: line, count: 1 }
  const logs = `docker compose logs --tail 50 ${c.service}`
  if (c.state === 'exited' || c.state === 'dead')
    return {
      ...base,
      id: 'exited',
      cause: `${c.service} stopped (exit ${c.exitCode})`,
      fix: `docker compose up -d ${c.service} (and read: ${logs})`,
      safe: true,
      action: 'start',
    }
  if (c.health === 'unhealthy' && c.state === 'running')
    return {
      ...base,
      id: 'unhealthy',
      cause: `${c.service}'s healthcheck fails`,
      fix: `docker compose restart ${c.service} (and read: ${logs})`,
      safe: true,
      action: 'restart',
    }
  return {
    ...base,
    id: 'restarting',
    cause: `${c.service} keeps crashing and Docker keeps restarting it`,
    fix: `read why: ${logs}`,
    safe: false,
  }
}

export function stateFindings(
  containers: ContainerInfo[],
  services: StackServices = { expected: [], oneShot: [] },
): Finding[] {
  const findings: Finding[] = []
  for (const c of containers) {
    const line = stateLine(c, containerCondition(c, services.oneShot.includes(c.service)))
    if (!line) continue
    const sig = matchLine(line, c.service)
    addFinding(findings, sig ? fromSignature(sig, c.service, line) : genericStateFinding(c, line))
  }
  const present = new Set(containers.map((c) => c.service))
  for (const service of services.expected) {
    if (present.has(service) || services.oneShot.includes(service)) continue
    addFinding(findings, {
      id: 'missing',
      service,
      evidence: `${service} has no container`,
      cause: `${service} is enabled but was never created or was removed`,
      fix: `docker compose up -d ${service}`,
      safe: true,
      action: 'start',
      count: 1,
    })
  }
  return findings
}

// ---------------------------------------------------------------------------------------------
// Memory

const UNITS: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
}

/** Parses docker's sizes: `1.125GiB`, `512MiB`, `0B`, `1.2kB`. */
export function parseDockerSize(text: string): number | undefined {
  const m = /^([\d.]+)\s*([kKmMgGtT]?i?B)$/.exec(text.trim())
  if (!m) return undefined
  const unit = UNITS[m[2]!.toUpperCase()]
  return unit === undefined ? undefined : Number(m[1]) * unit
}

export interface StatsLine {
  Name: string
  MemUsage: string
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`
}

/** Services near their memory limit, and the total near the memory Docker has. Pure. */
export function memoryFindings(stats: StatsLine[], memTotal: number | undefined): Finding[] {
  const findings: Finding[] = []
  let total = 0
  for (const s of stats) {
    const [usedText, limitText] = s.MemUsage.split('/').map((x) => x.trim())
    const used = parseDockerSize(usedText ?? '')
    const limit = parseDockerSize(limitText ?? '')
    if (used === undefined || limit === undefined) continue
    total += used
    const service = s.Name.replace(/^posthog-/, '').replace(/-\d+$/, '')
    const hasOwnLimit = memTotal === undefined || limit < memTotal * 0.98
    if (hasOwnLimit && used >= 0.9 * limit)
      findings.push({
        id: 'memory-near-limit',
        service,
        evidence: `${s.Name} uses ${s.MemUsage}`,
        cause: `${service} is at ${Math.round((used / limit) * 100)} % of its memory limit and will be OOM-killed soon`,
        fix: `raise ${service} in MEMORY_LIMITS in .env, then: npx tsx scripts/up.mts`,
        safe: false,
        count: 1,
      })
  }
  if (memTotal && total >= 0.9 * memTotal)
    findings.push({
      id: 'memory-total',
      service: 'docker',
      evidence: `containers use ${gib(total)} of the ${gib(memTotal)} Docker has`,
      cause: 'the stack uses nearly all of Docker’s memory: the kernel will start killing containers',
      fix: 'give Docker more memory (Docker Desktop: Settings > Resources) or add services to DISABLED_SERVICES',
      safe: false,
      count: 1,
    })
  return findings
}

// ---------------------------------------------------------------------------------------------

function preflightFindings(results: PreflightResult[]): Finding[] {
  return results
    .filter((r) => !r.ok)
    .map((r) => ({
      id: `preflight-${r.name}`,
      service: r.name.startsWith('docker') || r.name === 'compose-version' ? 'docker' : 'host',
      evidence: redactEvidence(r.message),
      cause: r.message,
      fix: r.fix,
      safe: false,
      count: 1,
    }))
}

async function dockerStats(): Promise<StatsLine[]> {
  const out = await docker(['stats', '--no-stream', '--format', '{{json .}}'], {
    timeout: '30s',
    nothrow: true,
  })
  if (!out.ok) return []
  return out.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as StatsLine)
}

interface DockerInfo {
  MemTotal?: number
  DockerRootDir?: string
  OperatingSystem?: string
}

async function dockerInfo(): Promise<DockerInfo | undefined> {
  const out = await docker(['info', '--format', '{{json .}}'], { timeout: '20s', nothrow: true })
  if (!out.ok) return undefined
  try {
    return JSON.parse(out.stdout) as DockerInfo
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Disk: when it runs low, name what takes the space.

interface LowDisk {
  where: string
  space: DiskSpace
}

/** STACK_DIR's disk and Docker's, those below the warning threshold. */
export function lowDisks(
  cfg: Pick<Config, 'stackDir'>,
  info: DockerInfo | undefined,
  t: DiskThresholds,
): LowDisk[] {
  const places: LowDisk[] = []
  const stack = spaceAt(cfg.stackDir)
  if (stack) places.push({ where: cfg.stackDir, space: stack })
  if (info) {
    const data = dockerDataInfo(info)
    const d = dockerDisk(data)
    const shared = !data.desktop && deviceOf(data.rootDir) === deviceOf(cfg.stackDir)
    if ('space' in d && !shared) places.push({ where: d.where, space: d.space })
  }
  return places.filter((p) => diskStatus(p.space, t) !== 'OK')
}

/** One finding per low disk, naming the biggest volumes, images and build cache. */
export function diskFindings(low: LowDisk[], dfJson: string): Finding[] {
  const consumers = biggestConsumers(dfJson)
  const biggest = consumers.length
    ? `the biggest: ${consumers.map((c) => `${c.kind} ${c.name} ${formatSize(c.bytes)}`).join(', ')}`
    : 'docker system df -v shows what takes the space'
  return low.map((l) => ({
    id: 'disk-low',
    service: 'disk',
    evidence: `${describeSpace(l.space)} on ${l.where}`,
    cause: `the disk is nearly full (${biggest}): once it is, ClickHouse, Kafka and Postgres stop writing and events are lost`,
    fix: 'docker image prune -a and docker builder prune remove unused images and build cache; a volume that keeps growing needs its retention looked at (docs/stack.md: Disk use)',
    safe: false,
    count: 1,
  }))
}

/** Drops generic state findings for services a catalog signature already explains. */
function preferExplained(findings: Finding[]): Finding[] {
  const generic = new Set(['exited', 'restarting', 'unhealthy'])
  const explained = new Set(findings.filter((f) => !generic.has(f.id)).map((f) => f.service))
  return findings.filter((f) => !generic.has(f.id) || !explained.has(f.service))
}

export async function analyse(cfg: Config, opts: AnalyseOptions = {}): Promise<Finding[]> {
  const findings: Finding[] = []
  if (opts.preflight !== false) {
    const pre = await runPreflight(cfg, { minFreeDiskBytes: opts.minFreeDiskBytes ?? 2 * 1024 ** 3 })
    findings.push(...preflightFindings(pre))
    if (pre.some((r) => !r.ok && (r.name === 'docker-cli' || r.name === 'docker-daemon'))) return findings
  }
  const containers = await listContainers(cfg.stackDir, '30s').catch(() => [] as ContainerInfo[])
  const services = await stackServices(cfg.stackDir, '30s').catch(() => undefined)
  const all: Finding[] = [...stateFindings(containers, services)]
  const [stats, info] = await Promise.all([dockerStats(), dockerInfo()])
  all.push(...memoryFindings(stats, info?.MemTotal))
  const low = lowDisks(cfg, info, opts.diskThresholds ?? DEFAULT_DISK_THRESHOLDS)
  if (low.length) {
    const df = await docker(['system', 'df', '-v', '--format', '{{json .}}'], {
      timeout: '60s',
      nothrow: true,
    })
    all.push(...diskFindings(low, df.stdout))
  }
  const logArgs = ['logs', '--no-color', '--since', opts.since ?? '1h', '--tail', String(opts.tail ?? 300)]
  const logs = await compose(cfg.stackDir, logArgs, { timeout: '60s', nothrow: true })
  for (const f of logFindings(parseComposeLogs(logs.stdout))) addFinding(all, f)
  for (const file of opts.logFiles ?? []) {
    const text = readTail(file)
    if (text !== undefined) for (const f of fileFindings(file, text)) addFinding(all, f)
  }
  findings.push(...preferExplained(all))
  return findings
}

/**
 * The findings as text. With `stackDir`, a closing line says where to run the shown
 * `docker compose` commands: in STACK_DIR, whose .env names the project and its files
 * (COMPOSE_PROJECT_NAME, COMPOSE_FILE), so they address the same stack as the scripts.
 */
export function formatFindings(findings: Finding[], stackDir?: string): string {
  if (findings.length === 0) return 'doctor: nothing wrong found'
  const lines = [`doctor: ${findings.length} problem${findings.length === 1 ? '' : 's'} found`]
  for (const f of findings) {
    lines.push(
      '',
      `[${f.service}] ${f.cause}`,
      `  evidence: ${f.evidence}${f.count > 1 ? ` (${f.count} lines)` : ''}`,
      `  fix: ${f.fix}${f.safe ? '   (safe: doctor --fix applies it)' : ''}`,
    )
  }
  if (stackDir && findings.some((f) => f.fix.includes('docker compose ')))
    lines.push(
      '',
      `run the docker compose commands above in the stack's folder, whose .env names the project and its files: cd ${path.resolve(stackDir)} && docker compose ...`,
    )
  return redact(lines.join('\n'))
}
