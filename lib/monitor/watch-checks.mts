// What the VPS watch (remote/watch.mts) checks and how it is set up: https://DOMAIN/_health with
// its certificate and the units that must run (frps, nginx), from settings that come from the
// flags, the environment and its settings file; --install saves those and adds the crontab entry.
// Bundled into the watch (plain node 18+): node: modules only, no zx, no yaml.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { registerSecret, UsageError } from '../core/cli.mts'
import { ENV_SPEC, envErrors, isHostname, parseEnvText, readEnvFile } from '../core/env.mts'
import { setEnvValue } from '../core/env-file.mts'
import { describeExit, run } from '../core/exec.mts'
import { readIfExists, writeFileAtomic } from '../core/fs.mts'
import { bounded, type RunBudget, runTimeoutMs } from './monitor-run.mts'
import { NOTIFY_KEYS } from './notify.mts'
import { checkHealthUrl } from './probe.mts'
import type { CheckResult } from './report.mts'
import { applyCronEntry, cronCommand, cronSchedule, describeCronChange, stableNodePath } from './schedule.mts'

export const WATCH_SERVICES_DEFAULT = 'frps,nginx'

/** Where the watch keeps its settings, state and log by default. */
export function watchHome(): string {
  return path.join(os.homedir(), '.posthog-watch')
}

/** The watch's flags that its settings come from (as its spec types them). */
export interface WatchFlags {
  domain?: string
  url?: string
  'ca-file'?: string
  services: string
  'state-file'?: string
  'env-file'?: string
  timeout: string
  install: boolean
}

type NotifyValues = Record<(typeof NOTIFY_KEYS)[number], string>

export interface WatchSettings {
  envFile: string
  domain?: string
  url: string
  caFile?: string
  services: string[]
  notify: NotifyValues
  stateFile: string
  runMs: number
}

/** The notification settings: the environment, then the settings file, then the defaults. */
function notifyValues(file: Record<string, string>, env: NodeJS.ProcessEnv): NotifyValues {
  const values = Object.fromEntries(
    NOTIFY_KEYS.map((k) => [k, env[k] ?? file[k] ?? ENV_SPEC[k]!.default]),
  ) as NotifyValues
  const problems = envErrors(values, [...NOTIFY_KEYS])
  if (problems.length) throw new UsageError(problems[0]!)
  registerSecret(values.HEALTH_WEBHOOK_URL)
  return values
}

/** `--services`, or WATCH_SERVICES of the settings file when the flag was left at its default. */
function serviceNames(flag: string, file: Record<string, string>): string[] {
  const raw = flag === WATCH_SERVICES_DEFAULT ? (file.WATCH_SERVICES ?? flag) : flag
  const names = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const s of names)
    if (!/^[\w@.-]+$/.test(s)) throw new UsageError(`--services: '${s}' is not a unit or process name`)
  return names
}

/** Settings: flags, then the environment, then the settings file, then defaults. */
export function watchSettings(flags: WatchFlags, env: NodeJS.ProcessEnv = process.env): WatchSettings {
  const envFile = path.resolve(flags['env-file'] ?? path.join(watchHome(), 'watch.env'))
  const fileText = readEnvFile(envFile)
  if (flags['env-file'] && fileText === undefined && !flags.install)
    throw new UsageError(`no settings file ${envFile}: run with --install first, or drop --env-file`)
  const file = fileText ? parseEnvText(fileText) : {}
  const notify = notifyValues(file, env)
  const domain = flags.domain ?? file.DOMAIN
  if (domain !== undefined && (!isHostname(domain) || domain === 'localhost'))
    throw new UsageError(`--domain=${domain} must be the public hostname, such as ph.example.com`)
  const url = flags.url ?? file.WATCH_URL ?? (domain ? `https://${domain}/_health` : undefined)
  if (!url) throw new UsageError('no --domain (or DOMAIN) given: say which site to watch')
  if (!/^https?:\/\/\S+$/.test(url)) throw new UsageError(`--url=${url} must be an http(s) URL`)
  return {
    envFile,
    domain,
    url,
    caFile: flags['ca-file'] ?? file.WATCH_CA_FILE,
    services: serviceNames(flags.services, file),
    notify,
    stateFile: path.resolve(flags['state-file'] ?? path.join(watchHome(), 'state.json')),
    runMs: runTimeoutMs(flags.timeout),
  }
}

/** `systemctl is-active UNIT`, or `pgrep -x NAME` where there is no systemd. */
export async function serviceRunning(name: string, budget: RunBudget): Promise<CheckResult> {
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

/** Every check of one run, each ending by the budget's deadline (else it is UNKNOWN). */
export async function watchChecks(
  s: WatchSettings,
  budget: RunBudget,
  ca: string | undefined,
): Promise<CheckResult[]> {
  const end = budget.checksEnd
  const groups = await Promise.all([
    bounded('public', end, () => checkHealthUrl('public', s.url, { timeoutMs: budget.callMs(), ca })),
    ...s.services.map((svc) => bounded(svc, end, async () => [await serviceRunning(svc, budget)])),
  ])
  return groups.flat()
}

/**
 * The settings file's text with these settings in it: the other lines are kept, and the
 * notification settings are written only when they come from the environment.
 */
export function watchSettingsText(
  current: string | undefined,
  s: WatchSettings,
  urlFlag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  let text = current ?? '# posthog-homelab remote/watch.mts settings (read by its cron entry)\n'
  const values: Record<string, string | undefined> = {
    DOMAIN: s.domain,
    WATCH_URL: urlFlag,
    WATCH_CA_FILE: s.caFile ? path.resolve(s.caFile) : undefined,
    WATCH_SERVICES: s.services.join(','),
    ...Object.fromEntries(NOTIFY_KEYS.map((k) => [k, env[k] !== undefined ? s.notify[k] : undefined])),
  }
  for (const [k, v] of Object.entries(values)) if (v !== undefined) text = setEnvValue(text, k, v)
  return text
}

export interface WatchInstall {
  minutes: number
  /** The `--url` given, saved as WATCH_URL. */
  urlFlag?: string
  logFile: string
  /** The watch script or bundle cron runs, with node's own arguments (`--import tsx`). */
  script: string
  execArgv: string[]
}

/** Saves the settings (0600: the webhook URL may hold a token) and sets the crontab entry. */
export async function installWatch(s: WatchSettings, o: WatchInstall): Promise<string[]> {
  const text = watchSettingsText(readIfExists(s.envFile), s, o.urlFlag)
  const written = writeFileAtomic(s.envFile, text, { mode: 0o600 })
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true })
  const argv = [
    stableNodePath(),
    ...o.execArgv,
    o.script,
    '--env-file',
    s.envFile,
    '--state-file',
    s.stateFile,
  ]
  const command = cronCommand(process.cwd(), [...argv, '--rotate-log', o.logFile], o.logFile)
  const cron = await applyCronEntry('watch', `${cronSchedule(o.minutes)} ${command}`)
  return [
    `settings ${s.envFile}: ${written}`,
    describeCronChange('watch', cron),
    `every ${o.minutes} min, output appended to ${o.logFile}`,
  ]
}
