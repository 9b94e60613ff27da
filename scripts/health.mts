// Health check for cron/launchd: local /_health, the stack's containers, and (with a public
// DOMAIN) https://DOMAIN/_health with its certificate. monitoring-plugins output and exit codes,
// change-only notifications, optional --heal. Scheduled by scripts/schedule.mts as a bundle.
import path from 'node:path'
import { parseDuration, runScript, UsageError } from '../lib/cli.mts'
import {
  type ContainerInfo,
  composeKey,
  evaluateServices,
  expectedServices,
  inspectKnown,
  listContainers,
  type ServiceProblem,
} from '../lib/containers.mts'
import { compose } from '../lib/docker.mts'
import { type Config, loadConfig } from '../lib/env.mts'
import { CommandFailed, describeExit, lastLine } from '../lib/exec.mts'
import {
  bounded,
  type CheckResult,
  checkHealthUrl,
  type MonitorState,
  readCaFile,
  rotateLog,
  type WebhookFormat,
} from '../lib/monitor.mts'
import { runMonitor } from '../lib/monitor-run.mts'

const spec = {
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
      help: 'state kept between runs (default STACK_DIR/health-state.json)',
    },
    'local-url': { type: 'string', env: 'HEALTH_LOCAL_URL', help: 'default http://127.0.0.1:PORT/_health' },
    'public-url': {
      type: 'string',
      env: 'HEALTH_PUBLIC_URL',
      help: 'default https://DOMAIN/_health when DOMAIN is not localhost',
    },
    'ca-file': { type: 'string', env: 'HEALTH_CA_FILE', help: 'extra CA certificate (PEM) to trust' },
    'rotate-log': {
      type: 'string',
      help: 'move this log file to FILE.1 when it is larger than --log-max-mb',
    },
    'log-max-mb': { type: 'string', default: '5', help: 'size cap for --rotate-log' },
    'env-file': { type: 'string', env: 'HOMELAB_ENV_FILE', help: 'configuration file (default .env)' },
  },
  notes:
    'Notifications: a POST to HEALTH_WEBHOOK_URL when the status changes, and every HEALTH_REMIND_HOURS\n' +
    'while CRITICAL (HEALTH_WEBHOOK_FORMAT=text for ntfy-style endpoints). A run that finds another\n' +
    'still running reports UNKNOWN (exit 3) and changes nothing.',
} as const

const HEAL_INTERVAL_MS = 3_600_000
const PER_CALL_MS = 10_000

interface Settings {
  cfg: Config
  deadline: number
  stateFile: string
  localUrl: string
  publicUrl?: string
  ca?: string
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

function settingsFrom(flags: Record<string, unknown>, cfg: Config): Settings {
  const runMs = parseDuration(String(flags.timeout), '--timeout')
  const publicDomain = cfg.domain !== 'localhost'
  checkUrl(flags['local-url'] as string | undefined, '--local-url')
  checkUrl(flags['public-url'] as string | undefined, '--public-url')
  return {
    cfg,
    deadline: Date.now() + runMs,
    stateFile: path.resolve(String(flags['state-file'] ?? path.join(cfg.stackDir, 'health-state.json'))),
    localUrl: String(flags['local-url'] ?? `http://127.0.0.1:${cfg.proxyPort}/_health`),
    publicUrl:
      (flags['public-url'] as string | undefined) ??
      (publicDomain ? `https://${cfg.domain}/_health` : undefined),
    ca: readCaFile(flags['ca-file'] as string | undefined),
  }
}

// Each call ends a little before the whole run does, so a hung server is reported as such
// (CRITICAL, no answer) rather than as a run cut short (UNKNOWN).
function callTimeout(s: Settings): number {
  return Math.max(200, Math.min(PER_CALL_MS, s.deadline - Date.now() - 300))
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

async function cachedExpected(state: MonitorState, cfg: Config): Promise<string[] | undefined> {
  const key = composeKey(cfg.stackDir, cfg.disabledServices)
  if (!key) return undefined
  if (state.services?.key === key) return state.services.names
  const names = await expectedServices(cfg.stackDir, cfg.disabledServices)
  state.services = { key, names }
  return names
}

/** Restarts healable services not restarted within the last hour; records each restart. */
async function heal(s: Settings, state: MonitorState, problems: ServiceProblem[]): Promise<CheckResult[]> {
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
    const res = await compose(s.cfg.stackDir, args, {
      timeout: callTimeout(s),
      nothrow: true,
    })
    state.heals[service] = [...(state.heals[service] ?? []), new Date(now).toISOString()].slice(-10)
    results.push({
      name: `heal ${service}`,
      status: 'WARNING',
      summary: res.ok
        ? `restarted (docker compose ${verb})`
        : `restart failed (exit ${res.exitCode ?? 'timeout'})`,
    })
  }
  return results
}

async function containerChecks(s: Settings, state: MonitorState, doHeal: boolean): Promise<CheckResult[]> {
  const expected = await cachedExpected(state, s.cfg)
  if (!expected)
    return [
      {
        name: 'services',
        status: 'UNKNOWN',
        summary: `no stack in ${s.cfg.stackDir}: run npx tsx scripts/up.mts first`,
      },
    ]
  let containers: ContainerInfo[]
  try {
    const timeout = callTimeout(s)
    containers =
      (await inspectKnown(state.containerNames ?? [], expected, timeout)) ??
      (await listContainers(s.cfg.stackDir, timeout))
    state.containerNames = containers.map((c) => c.name)
  } catch (e) {
    const msg =
      e instanceof CommandFailed ? lastLine(e.result) || describeExit(e.result) : (e as Error).message
    return [{ name: 'services', status: 'UNKNOWN', summary: `docker does not answer: ${msg}` }]
  }
  const evaluation = evaluateServices(expected, containers, state.restartCounts)
  state.restartCounts = evaluation.restartCounts
  const healResults = doHeal ? await heal(s, state, evaluation.problems) : []
  const healed = healResults.filter((r) => r.summary.startsWith('restarted')).map((r) => r.name.slice(5))
  return [servicesCheck(evaluation.problems, evaluation.running, healed), ...healResults]
}

async function allChecks(s: Settings, state: MonitorState, doHeal: boolean): Promise<CheckResult[]> {
  const probeOpts = () => ({ timeoutMs: callTimeout(s), ca: s.ca })
  const groups = await Promise.all([
    bounded('local', s.deadline, () => checkHealthUrl('local', s.localUrl, probeOpts())),
    bounded('services', s.deadline, () => containerChecks(s, state, doHeal)),
    ...(s.publicUrl
      ? [bounded('public', s.deadline, () => checkHealthUrl('public', s.publicUrl!, probeOpts()))]
      : []),
  ])
  return groups.flat()
}

async function main(flags: Record<string, unknown>): Promise<number> {
  const maxMb = Number(flags['log-max-mb'])
  if (!(maxMb > 0)) throw new UsageError(`--log-max-mb=${flags['log-max-mb']} must be a number above 0`)
  if (flags['rotate-log']) rotateLog(String(flags['rotate-log']), maxMb * 1024 * 1024)
  const cfg = loadConfig({ envFile: flags['env-file'] as string | undefined })
  const s = settingsFrom(flags, cfg)
  return runMonitor({
    name: 'health',
    stateFile: s.stateFile,
    json: Boolean(flags.json),
    check: (state) => allChecks(s, state, Boolean(flags.heal)),
    notify: () => ({
      url: cfg.raw.HEALTH_WEBHOOK_URL || undefined,
      format: (cfg.raw.HEALTH_WEBHOOK_FORMAT as WebhookFormat) ?? 'json',
      remindHours: Number(cfg.raw.HEALTH_REMIND_HOURS),
      timeoutMs: Math.min(5000, Math.max(1000, s.deadline + 5000 - Date.now())),
      ca: s.ca,
    }),
  })
}

await runScript('health', spec, (flags) => main(flags as unknown as Record<string, unknown>))
