// Scheduling shared by scripts/schedule.mts (home health check) and remote/watch.mts --install
// (VPS): a marked crontab entry (pure edit functions + thin `crontab -l` / `crontab -` I/O) and a
// launchd agent plist builder. Runs under plain node 18+ once bundled.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { run } from '../core/exec.mts'
import { timestamp } from '../core/fs.mts'
import { plistKey as key, plistDocument, plistStringArray, plistString as str } from '../core/plist.mts'

export const MARK_PREFIX = '# posthog-homelab:'

/** The marker comment line that precedes (and owns) the entry line after it. */
export function markerLine(id: string): string {
  return `${MARK_PREFIX}${id} (managed by posthog-homelab; remove with --uninstall)`
}

function isMarker(line: string, id: string): boolean {
  return line === `${MARK_PREFIX}${id}` || line.startsWith(`${MARK_PREFIX}${id} `)
}

/** Crontab text with our entry set to `entry`; every other line is kept as it was. */
export function upsertCronEntry(current: string, id: string, entry: string): string {
  const lines = splitLines(current)
  const at = lines.findIndex((l) => isMarker(l, id))
  if (at >= 0) lines.splice(at, 2, markerLine(id), entry)
  else lines.push(markerLine(id), entry)
  return joinLines(lines)
}

/** Crontab text without our entry (marker and the line after it). */
export function removeCronEntry(current: string, id: string): string {
  const lines = splitLines(current)
  const at = lines.findIndex((l) => isMarker(l, id))
  if (at < 0) return current
  lines.splice(at, 2)
  return joinLines(lines)
}

export function findCronEntry(current: string, id: string): string | undefined {
  const lines = splitLines(current)
  const at = lines.findIndex((l) => isMarker(l, id))
  return at >= 0 ? lines[at + 1] : undefined
}

function splitLines(text: string): string[] {
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  return lines
}

function joinLines(lines: string[]): string {
  return lines.length ? `${lines.join('\n')}\n` : ''
}

/** Quotes one word for /bin/sh (cron runs entries with sh). */
export function shellQuote(word: string): string {
  if (/^[\w/.,:=@+-]+$/.test(word)) return word
  return `'${word.split("'").join(`'\\''`)}'`
}

/** Cron treats `%` as a newline and cannot hold newlines: refuse such paths rather than mangle them. */
export function assertCronSafe(word: string): void {
  if (/[%\n\r]/.test(word))
    throw new UsageError(
      `'${word}' contains % or a line break, which a crontab line cannot hold: use another path`,
    )
}

/** `cd DIR && [NAME=VALUE ...] CMD ARGS... >> LOG 2>&1`, each word (each VALUE) quoted for sh. */
export function cronCommand(
  dir: string,
  argv: string[],
  log: string,
  env: Record<string, string> = {},
): string {
  const assignments = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_]\w*$/.test(k)) throw new Error(`'${k}' is not an environment variable name`)
    assertCronSafe(v)
    return `${k}=${shellQuote(v)} `
  })
  for (const w of [dir, ...argv, log]) assertCronSafe(w)
  return `cd ${shellQuote(dir)} && ${assignments.join('')}${argv.map(shellQuote).join(' ')} >> ${shellQuote(log)} 2>&1`
}

/**
 * The node binary to schedule. process.execPath has its symlinks resolved, which under Homebrew is
 * a versioned Cellar path (/opt/homebrew/Cellar/node/23.1.0/bin/node) that `brew upgrade node`
 * removes, silently ending every scheduled run: prefer the PATH entry (/opt/homebrew/bin/node)
 * that leads to the same file. Directories reached through a symlink are passed over: fnm's
 * per-shell `fnm_multishells/<pid>_<time>` links vanish with the shell.
 */
export function stableNodePath(execPath = process.execPath, envPath = process.env.PATH ?? ''): string {
  const target = realpathOf(execPath)
  if (!target) return execPath
  for (const dir of envPath.split(path.delimiter)) {
    if (!path.isAbsolute(dir) || dir.split(path.sep).includes('node_modules')) continue
    if (realpathOf(dir) !== path.resolve(dir)) continue
    const candidate = path.join(dir, 'node')
    if (realpathOf(candidate) === target) return candidate
  }
  return execPath
}

function realpathOf(file: string): string | undefined {
  try {
    return fs.realpathSync(file)
  } catch {
    return undefined
  }
}

/**
 * PATH for a scheduled run. cron and launchd start jobs with a bare PATH (/usr/bin:/bin, plus
 * /usr/sbin:/sbin under launchd) where Docker Desktop's docker (/usr/local/bin, ~/.docker/bin),
 * Homebrew's (/opt/homebrew/bin) or a snap's (/snap/bin) is not found: the directory docker was
 * found in at install time comes first.
 */
export function scheduledPath(dockerPath: string | undefined): string {
  const dirs = [
    dockerPath && path.dirname(dockerPath),
    '/usr/local/bin',
    '/usr/bin',
    '/bin',
    '/usr/sbin',
    '/sbin',
  ]
  return [...new Set(dirs.filter((d): d is string => Boolean(d)))].join(':')
}

/** Parses `5m`, `10m`, `1h`, `2h` into minutes; cron can only run at divisors of 60 min or of 24 h. */
export function parseEvery(raw: string): number {
  const m = /^(\d+)(m|h)$/.exec(raw.trim())
  if (!m) throw new UsageError(`--every=${raw} must be minutes or hours, e.g. 5m or 1h`)
  const minutes = Number(m[1]) * (m[2] === 'h' ? 60 : 1)
  const ok = minutes < 60 ? 60 % minutes === 0 : minutes % 60 === 0 && 24 % (minutes / 60) === 0
  if (!ok || minutes === 0)
    throw new UsageError(`--every=${raw} must divide an hour (1m..30m) or a day (1h..24h) evenly`)
  return minutes
}

export function cronSchedule(minutes: number): string {
  if (minutes < 60) return minutes === 1 ? '* * * * *' : `*/${minutes} * * * *`
  const hours = minutes / 60
  return hours === 24 ? '0 0 * * *' : hours === 1 ? '0 * * * *' : `0 */${hours} * * *`
}

// ---------------------------------------------------------------------------------------------
// crontab I/O (the `crontab` found on PATH; tests put a stand-in first)

export async function readCrontab(): Promise<string> {
  const res = await run('crontab', ['-l'], { nothrow: true, timeout: '15s' })
  if (res.ok) return res.stdout
  // "no crontab for root" (cronie/vixie) is an empty crontab, not an error.
  if (/no crontab for/i.test(res.stderr)) return ''
  throw new RuntimeFailure(
    `crontab -l failed: ${res.stderr.trim().split('\n').at(-1) || `exit ${res.exitCode}`}`,
    'check that cron is installed (apt install cron) and that you may use it',
  )
}

export async function writeCrontab(text: string): Promise<void> {
  const res = await run('crontab', ['-'], { nothrow: true, timeout: '15s', input: text })
  if (!res.ok)
    throw new RuntimeFailure(
      `crontab - failed: ${res.stderr.trim().split('\n').at(-1) || `exit ${res.exitCode}`}`,
      'check the crontab line shown above',
    )
}

export type CronChange = 'installed' | 'updated' | 'unchanged' | 'removed' | 'absent'

/**
 * Sets (entry) or removes (entry undefined) our marked crontab entry. Before replacing a
 * crontab it saves a copy to `backupDir/crontab.bak-<timestamp>`. Re-running changes nothing.
 */
export async function applyCronEntry(
  id: string,
  entry: string | undefined,
  backupDir = defaultBackupDir(),
): Promise<{ change: CronChange; backup?: string }> {
  const current = await readCrontab()
  const had = findCronEntry(current, id)
  const next = entry === undefined ? removeCronEntry(current, id) : upsertCronEntry(current, id, entry)
  if (next === current) return { change: entry === undefined ? 'absent' : 'unchanged' }
  let backup: string | undefined
  if (current !== '') {
    fs.mkdirSync(backupDir, { recursive: true, mode: 0o700 })
    backup = path.join(backupDir, `crontab.bak-${timestamp()}`)
    for (let i = 1; fs.existsSync(backup); i++)
      backup = path.join(backupDir, `crontab.bak-${timestamp()}-${i}`)
    fs.writeFileSync(backup, current, { mode: 0o600, flag: 'wx' })
  }
  await writeCrontab(next)
  const change: CronChange = entry === undefined ? 'removed' : had === undefined ? 'installed' : 'updated'
  return { change, backup }
}

/** The line that reports what applyCronEntry did, e.g. `crontab entry 'posthog-homelab:watch': installed`. */
export function describeCronChange(id: string, r: { change: CronChange; backup?: string }): string {
  const saved = r.backup ? ` (previous crontab saved to ${r.backup})` : ''
  return `crontab entry 'posthog-homelab:${id}': ${r.change}${saved}`
}

export function defaultBackupDir(): string {
  return path.join(os.homedir(), '.posthog-homelab', 'backups')
}

// ---------------------------------------------------------------------------------------------
// launchd agent plist

export interface LaunchAgent {
  label: string
  programArguments: string[]
  workingDirectory: string
  startIntervalSeconds: number
  stdoutPath: string
  stderrPath: string
  environment?: Record<string, string>
}

/** A launchd agent's property list: runs every `startIntervalSeconds` and once at load. */
export function buildLaunchAgentPlist(agent: LaunchAgent): string {
  const body: string[] = [
    key('Label'),
    str(agent.label),
    key('ProgramArguments'),
    ...plistStringArray(agent.programArguments),
    key('WorkingDirectory'),
    str(agent.workingDirectory),
    key('StartInterval'),
    `<integer>${Math.round(agent.startIntervalSeconds)}</integer>`,
    key('RunAtLoad'),
    '<true/>',
    key('ProcessType'),
    str('Background'),
    key('StandardOutPath'),
    str(agent.stdoutPath),
    key('StandardErrorPath'),
    str(agent.stderrPath),
  ]
  if (agent.environment && Object.keys(agent.environment).length) {
    body.push(key('EnvironmentVariables'), '<dict>')
    for (const [k, v] of Object.entries(agent.environment)) body.push(`  ${key(k)}`, `  ${str(v)}`)
    body.push('</dict>')
  }
  return plistDocument(body)
}
