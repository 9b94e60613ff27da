// Health check for cron/launchd: local /_health, the stack's containers, and (with a public
// DOMAIN) https://DOMAIN/_health with its certificate. monitoring-plugins output and exit codes,
// change-only notifications, optional --heal. Scheduled by scripts/schedule.mts as a bundle.
import path from 'node:path'
import { defineScript, type Flags, parseDuration, runScript, UsageError } from '../lib/core/cli.mts'
import {
  type DiskSpace,
  type DiskThresholds,
  describeSpace,
  deviceOf,
  diskStatus,
  dockerDataInfo,
  dockerDisk,
  parseThreshold,
  spaceAt,
} from '../lib/core/disk.mts'
import { compose, docker, type StackServices, stackServices } from '../lib/core/docker.mts'
import { type Config, ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { CommandFailed, describeExit, lastLine } from '../lib/core/exec.mts'
import {
  bounded,
  type CheckResult,
  checkHealthUrl,
  type MonitorState,
  readCaFile,
  rotateLog,
  routeChecks,
  type WebhookFormat,
} from '../lib/monitor/monitor.mts'
import { type RunBudget, runMonitor, unknownOnFailure } from '../lib/monitor/monitor-run.mts'
import {
  type ContainerInfo,
  composeKey,
  evaluateServices,
  inspectKnown,
  listContainers,
  type ServiceProblem,
} from '../lib/stack/containers.mts'
import { probeRoutes } from '../lib/stack/routes.mts'

const spec = defineScript({
  usage: 'node dist/health.mjs [options]   (or: npx tsx scripts/health.mts)',
  summary:
    'Checks PostHog: local /_health, every enabled service, and https://DOMAIN/_health with its certificate.\n' +
    'Prints `POSTHOG OK|WARNING|CRITICAL|UNKNOWN - ...` and exits 0/1/2/3 (monitoring-plugins convention).',
  flags: {
    json: { type: 'boolean', help: 'print the report as JSON' },
    heal: {
      type: 'boolean',
      env: 'HEALTH_HEAL',
      help: 'restart exited or unhealthy services (at most once per service per hour)',
    },
    timeout: { type: 'string', env: 'HEALTH_RUN_TIMEOUT', default: '20s', help: 'bound for the whole run' },
    'state-file': {
      type: 'string',
      env: 'HEALTH_STATE_FILE',
      path: true,
      help: 'state kept between runs (default STACK_DIR/health-state.json)',
    },
    'local-url': { type: 'string', env: 'HEALTH_LOCAL_URL', help: 'default http://127.0.0.1:PORT/_health' },
    'public-url': {
      type: 'string',
      env: 'HEALTH_PUBLIC_URL',
      help: 'default https://DOMAIN/_health when DOMAIN is not localhost',
    },
    'ca-file': {
      type: 'string',
      env: 'HEALTH_CA_FILE',
      path: true,
      help: 'extra CA certificate (PEM) to trust',
    },
    'disk-warning': {
      type: 'string',
      env: 'HEALTH_DISK_WARNING',
      default: '15%,10GiB',
      help: 'WARNING when less is free (share, size or both) on STACK_DIR or Docker’s disk',
    },
    'disk-critical': {
      type: 'string',
      env: 'HEALTH_DISK_CRITICAL',
      default: '5%,3GiB',
      help: 'CRITICAL when less is free',
    },
    'rotate-log': {
      type: 'string',
      path: true,
      help: 'move this log file to FILE.1 when it is larger than --log-max-mb',
    },
    'log-max-mb': { type: 'string', default: '5', help: 'size cap for --rotate-log' },
    'env-file': ENV_FILE_FLAG,
  },
  notes:
    'Also probes the capture path through the local proxy (/e/, /i/v0/e/, /batch, /flags, /s/ and /,\n' +
    'for the services that are enabled) and the free disk of STACK_DIR and of Docker’s data.\n' +
    'Notifications: a POST to HEALTH_WEBHOOK_URL when the status changes, and every HEALTH_REMIND_HOURS\n' +
    'while CRITICAL (HEALTH_WEBHOOK_FORMAT=text for ntfy-style endpoints). A run that finds another\n' +
    'still running reports UNKNOWN (exit 3) and changes nothing; so does a bad flag, a broken .env or a\n' +
    'crash: what the check cannot judge is UNKNOWN, never CRITICAL. The whole run, webhook included,\n' +
    'ends within --timeout.',
})
type ScriptFlags = Flags<typeof spec.flags>

const HEAL_INTERVAL_MS = 3_600_000
const PER_CALL_MS = 10_000
/** How long `docker info`'s answer about where Docker keeps its data is reused. */
const DOCKER_DATA_TTL_MS = 6 * 3_600_000

interface Settings {
  cfg: Config
  runMs: number
  stateFile: string
  localUrl: string
  publicUrl?: string
  ca?: string
  disk: DiskThresholds
}

/** `127.0.0.1:18000/_health` parses as a URL with protocol `127.0.0.1:`: insist on http(s). */
function checkUrl(url: string | undefined, flag: string): void {
  if (url === undefined) return
  let ok = false
  try {
    ok = /^https?:$/.test(new URL(url).protocol)
  } catch {
    // not a URL at all
  }
  if (!ok)
    throw new UsageError(`${flag}=${url} must be an http(s) URL such as http://127.0.0.1:18000/_health`)
}

function settingsFrom(flags: ScriptFlags, cfg: Config): Settings {
  const runMs = parseDuration(String(flags.timeout), '--timeout')
  const publicDomain = cfg.domain !== 'localhost'
  checkUrl(flags['local-url'] as string | undefined, '--local-url')
  checkUrl(flags['public-url'] as string | undefined, '--public-url')
  return {
    cfg,
    runMs,
    stateFile: path.resolve(String(flags['state-file'] ?? path.join(cfg.stackDir, 'health-state.json'))),
    localUrl: String(flags['local-url'] ?? `http://127.0.0.1:${cfg.proxyPort}/_health`),
    publicUrl:
      (flags['public-url'] as string | undefined) ??
      (publicDomain ? `https://${cfg.domain}/_health` : undefined),
    ca: readCaFile(flags['ca-file'] as string | undefined),
    disk: {
      warning: parseThreshold(String(flags['disk-warning']), '--disk-warning'),
      critical: parseThreshold(String(flags['disk-critical']), '--disk-critical'),
    },
  }
}

function isWarning(p: ServiceProblem): boolean {
  return p.kind === 'restarts-growing' || (p.kind === 'oom-killed' && !p.healable)
}

function servicesCheck(problems: ServiceProblem[], running: number, healed: string[]): CheckResult {
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
async function cachedServices(
  state: MonitorState,
  cfg: Config,
  budget: RunBudget,
): Promise<StackServices | undefined> {
  const key = composeKey(cfg.stackDir)
  if (!key) return undefined
  if (state.services?.key === key) return state.services
  const services = await stackServices(cfg.stackDir, budget.callMs(PER_CALL_MS))
  state.services = { key, ...services }
  return services
}

/** Restarts healable services not restarted within the last hour; records each restart. */
async function heal(
  s: Settings,
  budget: RunBudget,
  state: MonitorState,
  problems: ServiceProblem[],
): Promise<CheckResult[]> {
  const now = Date.now()
  const due = [...new Set(problems.filter((p) => p.healable).map((p) => p.service))]
  const results: CheckResult[] = []
  for (const service of due) {
    const last = (state.heals[service] ?? []).at(-1)
    if (last && now - Date.parse(last) < HEAL_INTERVAL_MS) {
      results.push({
        name: `heal ${service}`,
        status: 'WARNING',
        summary: `not restarted: already restarted at ${last}`,
      })
      continue
    }
    const verb = problems.some((p) => p.service === service && p.kind === 'missing') ? 'up' : 'restart'
    const args = verb === 'up' ? ['up', '-d', service] : ['restart', service]
    const res = await compose(s.cfg.stackDir, args, { timeout: budget.callMs(PER_CALL_MS), nothrow: true })
    state.heals[service] = [...(state.heals[service] ?? []), new Date(now).toISOString()].slice(-10)
    results.push({
      name: `heal ${service}`,
      status: 'WARNING',
      summary: res.ok ? `restarted (docker compose ${verb})` : `restart failed (${describeExit(res)})`,
    })
  }
  return results
}

function dockerProblem(e: unknown): string {
  return e instanceof CommandFailed ? lastLine(e.result) || describeExit(e.result) : (e as Error).message
}

async function containerChecks(
  s: Settings,
  budget: RunBudget,
  state: MonitorState,
  services: StackServices | Error | undefined,
  doHeal: boolean,
): Promise<CheckResult[]> {
  if (services instanceof Error)
    return [
      { name: 'services', status: 'UNKNOWN', summary: `docker does not answer: ${dockerProblem(services)}` },
    ]
  if (!services)
    return [
      {
        name: 'services',
        status: 'UNKNOWN',
        summary: `no stack in ${s.cfg.stackDir}: run npx tsx scripts/up.mts first`,
      },
    ]
  let containers: ContainerInfo[]
  try {
    containers =
      (await inspectKnown(state.containerNames ?? [], services, budget.callMs(PER_CALL_MS))) ??
      (await listContainers(s.cfg.stackDir, budget.callMs(PER_CALL_MS)))
    state.containerNames = containers.map((c) => c.name)
  } catch (e) {
    return [{ name: 'services', status: 'UNKNOWN', summary: `docker does not answer: ${dockerProblem(e)}` }]
  }
  const evaluation = evaluateServices(services.expected, services.oneShot, containers, state.restartCounts)
  state.restartCounts = evaluation.restartCounts
  const healResults = doHeal ? await heal(s, budget, state, evaluation.problems) : []
  const healed = healResults.filter((r) => r.summary.startsWith('restarted')).map((r) => r.name.slice(5))
  return [servicesCheck(evaluation.problems, evaluation.running, healed), ...healResults]
}

// ---------------------------------------------------------------------------------------------
// Disk

/** Where Docker keeps its data: asked of `docker info` now and then, reused in between. */
async function dockerData(budget: RunBudget, state: MonitorState) {
  const cached = state.dockerData
  if (cached && Date.now() - Date.parse(cached.time) < DOCKER_DATA_TTL_MS) return cached
  const out = await docker(['info', '--format', '{{json .}}'], { timeout: budget.callMs(PER_CALL_MS) })
  const data = dockerDataInfo(JSON.parse(out.stdout) as { DockerRootDir?: string; OperatingSystem?: string })
  state.dockerData = { ...data, time: new Date().toISOString() }
  return state.dockerData
}

function spaceCheck(name: string, where: string, space: DiskSpace, t: DiskThresholds): CheckResult {
  const status = diskStatus(space, t)
  const fix = status === 'OK' ? '' : ': free some (npx tsx scripts/doctor.mts names the biggest consumers)'
  return { name, status, summary: `${describeSpace(space)} on ${where}${fix}` }
}

/** STACK_DIR's disk and Docker's: one check when they are the same filesystem. */
async function diskChecks(s: Settings, budget: RunBudget, state: MonitorState): Promise<CheckResult[]> {
  const stack = spaceAt(s.cfg.stackDir)
  const checks: CheckResult[] = []
  let data: Awaited<ReturnType<typeof dockerData>> | undefined
  let dockerSide: CheckResult | undefined
  try {
    data = await dockerData(budget, state)
  } catch (e) {
    dockerSide = {
      name: 'docker-disk',
      status: 'UNKNOWN',
      summary: `docker does not answer: ${dockerProblem(e)}`,
    }
  }
  if (data) {
    const d = dockerDisk(data)
    const shared = !data.desktop && 'space' in d && deviceOf(data.rootDir) === deviceOf(s.cfg.stackDir)
    if (shared && stack) return [spaceCheck('disk', `${d.where} and STACK_DIR`, stack, s.disk)]
    dockerSide =
      'space' in d
        ? spaceCheck('docker-disk', d.where, d.space, s.disk)
        : { name: 'docker-disk', status: 'UNKNOWN', summary: d.unknown }
  }
  if (stack) checks.push(spaceCheck('stack-disk', s.cfg.stackDir, stack, s.disk))
  if (dockerSide) checks.push(dockerSide)
  return checks
}

// ---------------------------------------------------------------------------------------------

async function routes(
  s: Settings,
  budget: RunBudget,
  expected: string[] | undefined,
): Promise<CheckResult[]> {
  if (!expected) return []
  const baseUrl = new URL(s.localUrl).origin
  return routeChecks(
    await probeRoutes({ baseUrl, enabledServices: expected, timeoutMs: budget.callMs(5000) }),
  )
}

async function allChecks(
  s: Settings,
  budget: RunBudget,
  state: MonitorState,
  doHeal: boolean,
): Promise<CheckResult[]> {
  const probeOpts = () => ({ timeoutMs: budget.callMs(PER_CALL_MS), ca: s.ca })
  const end = budget.checksEnd
  // Both the route and the container checks need the services; asking docker for them is bounded too.
  const services = cachedServices(state, s.cfg, budget).catch((e: Error) => e)
  const expected = async () => {
    const known = await services
    return known instanceof Error ? undefined : known?.expected
  }
  const groups = await Promise.all([
    bounded('local', end, () => checkHealthUrl('local', s.localUrl, probeOpts())),
    bounded('routes', end, async () => routes(s, budget, await expected())),
    bounded('services', end, async () => containerChecks(s, budget, state, await services, doHeal)),
    ...(s.publicUrl
      ? [bounded('public', end, () => checkHealthUrl('public', s.publicUrl!, probeOpts()))]
      : []),
    bounded('disk', end, () => diskChecks(s, budget, state)),
  ])
  return groups.flat()
}

async function main(flags: ScriptFlags): Promise<number> {
  const maxMb = Number(flags['log-max-mb'])
  if (!(maxMb > 0)) throw new UsageError(`--log-max-mb=${flags['log-max-mb']} must be a number above 0`)
  if (flags['rotate-log']) rotateLog(String(flags['rotate-log']), maxMb * 1024 * 1024)
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const s = settingsFrom(flags, cfg)
  return runMonitor({
    name: 'health',
    stateFile: s.stateFile,
    json: Boolean(flags.json),
    timeoutMs: s.runMs,
    check: (state, budget) => allChecks(s, budget, state, Boolean(flags.heal)),
    notify: {
      url: cfg.raw.HEALTH_WEBHOOK_URL || undefined,
      format: (cfg.raw.HEALTH_WEBHOOK_FORMAT as WebhookFormat) ?? 'json',
      remindHours: Number(cfg.raw.HEALTH_REMIND_HOURS),
      ca: s.ca,
    },
  })
}

await runScript('health', spec, main, {
  onFailure: unknownOnFailure('health'),
})
