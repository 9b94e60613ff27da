// The outside view, from cron on the VPS: https://DOMAIN/_health through the tunnel, the
// certificate's remaining days, and that frps and nginx run. Same output, exit codes, state file
// and change-only notifications as the home health check (lib/monitor/monitor.mts). Runs bundled
// (dist/remote/watch.mjs) with plain node 18+; needs no STACK_DIR and no docker.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { defineScript, parseDuration, registerSecret, runScript, say, UsageError } from '../lib/core/cli.mts'
import { envErrors, isHostname, parseEnvText, readEnvFile, setEnvValue } from '../lib/core/env.mts'
import { describeExit, run } from '../lib/core/exec.mts'
import { readIfExists, writeFileAtomic } from '../lib/core/fs.mts'
import {
  bounded,
  type CheckResult,
  checkHealthUrl,
  readCaFile,
  rotateLog,
  type WebhookFormat,
} from '../lib/monitor/monitor.mts'
import { type RunBudget, runMonitor, unknownOnFailure } from '../lib/monitor/monitor-run.mts'
import {
  applyCronEntry,
  cronCommand,
  cronSchedule,
  describeCronChange,
  parseEvery,
  stableNodePath,
} from '../lib/monitor/schedule.mts'

const home = () => path.join(os.homedir(), '.posthog-watch')

const spec = defineScript({
  usage: 'node watch.mjs --domain ph.example.com [options]   (or: npx tsx remote/watch.mts)',
  summary:
    'Checks PostHog from the VPS: https://DOMAIN/_health, its certificate, and that frps and nginx run.\n' +
    'Prints `POSTHOG OK|WARNING|CRITICAL|UNKNOWN - ...` and exits 0/1/2/3. --install adds its crontab entry.',
  flags: {
    domain: { type: 'string', env: 'DOMAIN', help: 'public hostname PostHog is served at' },
    url: { type: 'string', env: 'WATCH_URL', help: 'URL to check (default https://DOMAIN/_health)' },
    'ca-file': {
      type: 'string',
      env: 'WATCH_CA_FILE',
      path: true,
      help: 'extra CA certificate (PEM) to trust',
    },
    services: {
      type: 'string',
      env: 'WATCH_SERVICES',
      default: 'frps,nginx',
      help: 'systemd units (or process names) that must run',
    },
    'state-file': {
      type: 'string',
      env: 'WATCH_STATE_FILE',
      path: true,
      help: 'default ~/.posthog-watch/state.json',
    },
    'env-file': {
      type: 'string',
      env: 'WATCH_ENV_FILE',
      path: true,
      help: 'settings file (DOMAIN, HEALTH_WEBHOOK_URL, ...) (default ~/.posthog-watch/watch.env)',
    },
    timeout: { type: 'string', env: 'WATCH_TIMEOUT', default: '20s', help: 'bound for the whole run' },
    json: { type: 'boolean', help: 'print the report as JSON' },
    install: { type: 'boolean', help: 'save the settings to --env-file and add the crontab entry' },
    uninstall: { type: 'boolean', help: 'remove the crontab entry' },
    every: { type: 'string', default: '5m', help: 'how often cron runs it (with --install)' },
    'log-file': {
      type: 'string',
      path: true,
      help: 'where cron appends the output (default ~/.posthog-watch/watch.log)',
    },
    'rotate-log': {
      type: 'string',
      path: true,
      help: 'move this log to FILE.1 when larger than --log-max-mb',
    },
    'log-max-mb': { type: 'string', default: '5', help: 'size cap for --rotate-log' },
  },
  notes:
    'Notifications: HEALTH_WEBHOOK_URL, HEALTH_WEBHOOK_FORMAT (json|text) and HEALTH_REMIND_HOURS come from\n' +
    'the environment or the settings file (never from the command line: the URL may hold a token).\n' +
    'A check it cannot judge (a bad flag or setting, a crash) is UNKNOWN (exit 3); --install and\n' +
    '--uninstall exit 2 on bad input. The whole run, webhook included, ends within --timeout.',
})

type Flags = Record<string, unknown>
const SETTINGS_KEYS = ['DOMAIN', 'WATCH_URL', 'WATCH_CA_FILE', 'WATCH_SERVICES', 'HEALTH_WEBHOOK_URL']
const NOTIFY_DEFAULTS: Record<string, string> = {
  HEALTH_WEBHOOK_URL: '',
  HEALTH_WEBHOOK_FORMAT: 'json',
  HEALTH_REMIND_HOURS: '6',
}

/** Settings: flags, then the environment, then the settings file, then defaults. */
function resolveSettings(flags: Flags) {
  const envFile = path.resolve(String(flags['env-file'] ?? path.join(home(), 'watch.env')))
  const fileText = readEnvFile(envFile)
  if (flags['env-file'] && fileText === undefined && !flags.install)
    throw new UsageError(`no settings file ${envFile}: run with --install first, or drop --env-file`)
  const file = fileText ? parseEnvText(fileText) : {}
  const pick = (flag: string, key: string) => (flags[flag] as string | undefined) ?? file[key]
  const notify: Record<string, string> = {}
  for (const [k, d] of Object.entries(NOTIFY_DEFAULTS)) notify[k] = process.env[k] ?? file[k] ?? d
  const problems = envErrors(notify, Object.keys(NOTIFY_DEFAULTS))
  if (problems.length) throw new UsageError(problems[0]!)
  registerSecret(notify.HEALTH_WEBHOOK_URL)
  const domain = pick('domain', 'DOMAIN')
  if (domain !== undefined && (!isHostname(domain) || domain === 'localhost'))
    throw new UsageError(`--domain=${domain} must be the public hostname, such as ph.example.com`)
  const url = pick('url', 'WATCH_URL') ?? (domain ? `https://${domain}/_health` : undefined)
  if (!url) throw new UsageError('no --domain (or DOMAIN) given: say which site to watch')
  if (!/^https?:\/\/\S+$/.test(url)) throw new UsageError(`--url=${url} must be an http(s) URL`)
  const services = String(
    flags.services === 'frps,nginx' ? (file.WATCH_SERVICES ?? flags.services) : flags.services,
  )
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const s of services)
    if (!/^[\w@.-]+$/.test(s)) throw new UsageError(`--services: '${s}' is not a unit or process name`)
  return {
    envFile,
    domain,
    url,
    caFile: pick('ca-file', 'WATCH_CA_FILE'),
    services,
    notify,
    stateFile: path.resolve(String(flags['state-file'] ?? path.join(home(), 'state.json'))),
    runMs: parseDuration(String(flags.timeout), '--timeout'),
  }
}

type Settings = ReturnType<typeof resolveSettings>

/** `systemctl is-active UNIT`, or `pgrep -x NAME` where there is no systemd. */
async function serviceRunning(name: string, budget: RunBudget): Promise<CheckResult> {
  const sc = await run('systemctl', ['is-active', name], { nothrow: true, timeout: budget.callMs() })
  if (sc.timedOut)
    return { name, status: 'UNKNOWN', summary: `systemctl does not answer: ${describeExit(sc)}` }
  const state = sc.stdout.trim()
  if (sc.exitCode !== 127 && state !== '' && !/System has not been booted with systemd/.test(sc.stderr)) {
    if (sc.ok && state === 'active') return { name, status: 'OK', summary: 'active' }
    return { name, status: 'CRITICAL', summary: `${state || 'not active'}: systemctl status ${name}` }
  }
  const pg = await run('pgrep', ['-x', name], { nothrow: true, timeout: budget.callMs() })
  if (pg.ok) return { name, status: 'OK', summary: 'running' }
  if (pg.exitCode === 1) return { name, status: 'CRITICAL', summary: 'not running' }
  return { name, status: 'UNKNOWN', summary: 'neither systemctl nor pgrep could tell' }
}

async function watchChecks(s: Settings, budget: RunBudget, ca: string | undefined): Promise<CheckResult[]> {
  const end = budget.checksEnd
  const groups = await Promise.all([
    bounded('public', end, () => checkHealthUrl('public', s.url, { timeoutMs: budget.callMs(), ca })),
    ...s.services.map((svc) => bounded(svc, end, async () => [await serviceRunning(svc, budget)])),
  ])
  return groups.flat()
}

function check(s: Settings, flags: Flags): Promise<number> {
  const ca = readCaFile(s.caFile)
  return runMonitor({
    name: 'watch',
    stateFile: s.stateFile,
    json: Boolean(flags.json),
    timeoutMs: s.runMs,
    check: (_state, budget) => watchChecks(s, budget, ca),
    notify: {
      url: s.notify.HEALTH_WEBHOOK_URL || undefined,
      format: s.notify.HEALTH_WEBHOOK_FORMAT as WebhookFormat,
      remindHours: Number(s.notify.HEALTH_REMIND_HOURS),
      ca,
    },
  })
}

/** Saves the settings (0600: the webhook URL may hold a token) and sets the crontab entry. */
async function install(s: Settings, flags: Flags): Promise<number> {
  const minutes = parseEvery(String(flags.every))
  readCaFile(s.caFile) // a CA file cron could not read would fail every run: refuse it now
  let text =
    readIfExists(s.envFile) ?? '# posthog-homelab remote/watch.mts settings (read by its cron entry)\n'
  const values: Record<string, string | undefined> = {
    DOMAIN: s.domain,
    WATCH_URL: flags.url as string | undefined,
    WATCH_CA_FILE: s.caFile ? path.resolve(s.caFile) : undefined,
    WATCH_SERVICES: s.services.join(','),
    ...Object.fromEntries(
      Object.keys(NOTIFY_DEFAULTS).map((k) => [k, process.env[k] !== undefined ? s.notify[k] : undefined]),
    ),
  }
  for (const [k, v] of Object.entries(values))
    if (v !== undefined && (SETTINGS_KEYS.includes(k) || k in NOTIFY_DEFAULTS)) text = setEnvValue(text, k, v)
  const written = writeFileAtomic(s.envFile, text, { mode: 0o600 })
  const log = path.resolve(String(flags['log-file'] ?? path.join(home(), 'watch.log')))
  fs.mkdirSync(path.dirname(log), { recursive: true })
  const script = path.resolve(process.argv[1]!)
  const argv = [
    stableNodePath(),
    ...process.execArgv,
    script,
    '--env-file',
    s.envFile,
    '--state-file',
    s.stateFile,
  ]
  const entry = `${cronSchedule(minutes)} ${cronCommand(process.cwd(), [...argv, '--rotate-log', log], log)}`
  const cron = await applyCronEntry('watch', entry)
  say(`settings ${s.envFile}: ${written}`)
  say(describeCronChange('watch', cron))
  say(`every ${minutes} min, output appended to ${log}`)
  return 0
}

async function main(flags: Flags): Promise<number> {
  const maxMb = Number(flags['log-max-mb'])
  if (!(maxMb > 0)) throw new UsageError(`--log-max-mb=${flags['log-max-mb']} must be a number above 0`)
  if (flags.install && flags.uninstall) throw new UsageError('--install and --uninstall exclude each other')
  if (flags.uninstall) {
    say(describeCronChange('watch', await applyCronEntry('watch', undefined)))
    return 0
  }
  if (flags['rotate-log']) rotateLog(String(flags['rotate-log']), maxMb * 1024 * 1024)
  const s = resolveSettings(flags)
  return flags.install ? install(s, flags) : check(s, flags)
}

const isSetup = (argv: string[]) => argv.includes('--install') || argv.includes('--uninstall')

await runScript('watch', spec, (flags) => main(flags as unknown as Flags), {
  onFailure: unknownOnFailure('watch', (argv) => !isSetup(argv)),
})
