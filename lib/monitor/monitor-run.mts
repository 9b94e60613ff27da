// One monitoring run as the home health check (scripts/health.mts) and the VPS watch
// (remote/watch.mts) both do it: take the state file's lock, run the checks, notify on a change,
// record the result, print the report and return the monitoring-plugins exit code. Each script
// brings only its own checks. The whole run, notification included, ends within --timeout; what
// it cannot judge (bad input, a crash, an unusable state file) is UNKNOWN, never CRITICAL.
// Bundled into both (plain node 18+): keep it free of yaml and zx.
import fs from 'node:fs'
import path from 'node:path'
import { type FailureReporter, type FlagSpec, parseDuration, warn } from '../core/cli.mts'
import { killRunning } from '../core/exec.mts'
import { acquireLock, LockHeld } from '../core/lock.mts'
import { type NotifySettings, notifyIfDue } from './notify.mts'
import {
  aggregate,
  type CheckResult,
  EXIT_CODE,
  formatReport,
  formatReportJson,
  type Report,
} from './report.mts'
import { loadState, type MonitorState, recordResult, saveState } from './state.mts'

export const LABEL = 'POSTHOG'

export const JSON_REPORT_FLAG = {
  type: 'boolean',
  help: 'print the report as JSON',
} as const satisfies FlagSpec

/** `--timeout`: the limit of one whole run; `env` names the variable that may set it. */
export function runTimeoutFlag<const E extends string>(env: E) {
  return { type: 'string', env, default: '20s', help: 'bound for the whole run' } as const satisfies FlagSpec
}

export function runTimeoutMs(raw: string): number {
  return parseDuration(raw, '--timeout')
}

/** The run is out of time: nothing more may start (a check that needs it is UNKNOWN). */
export class RunTimeLimit extends Error {
  constructor() {
    super('not finished within the run time limit')
  }
}

const FINISH_MS = 300 // saving the state and printing
const CALL_MARGIN_MS = 300

/**
 * Time for the parts of one run. The checks end early enough for the notification (when a
 * webhook is set) and the report to fit in the run's limit; each docker call or HTTP request
 * ends a little before the checks must, so a hung server is reported as such (no answer)
 * rather than as a run cut short.
 */
export class RunBudget {
  readonly started: number
  /** When the run must be over. */
  readonly end: number
  /** When the checks must be over. */
  readonly checksEnd: number

  constructor(timeoutMs: number, notifies: boolean, now = Date.now()) {
    this.started = now
    this.end = now + timeoutMs
    const notifyReserve = notifies ? Math.min(5000, Math.max(500, timeoutMs * 0.25)) : 0
    this.checksEnd = this.end - notifyReserve - Math.min(FINISH_MS, timeoutMs * 0.1)
  }

  /** Timeout for one call starting now: at most `max`; throws RunTimeLimit when no time is left. */
  callMs(max = 10_000): number {
    const left = this.checksEnd - Date.now() - CALL_MARGIN_MS
    if (left < 50) throw new RunTimeLimit()
    return Math.min(max, left)
  }

  /** Timeout for the webhook POST: what is left of the run, at most 5 s. */
  notifyMs(): number {
    return Math.max(100, Math.min(5000, this.end - Date.now() - 100))
  }
}

/** Runs `fn`; if it has not finished by `deadline`, its result is an UNKNOWN check named `name`. */
export async function bounded(
  name: string,
  deadline: number,
  fn: () => Promise<CheckResult[]>,
): Promise<CheckResult[]> {
  const left = deadline - Date.now()
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<CheckResult[]>((resolve) => {
    timer = setTimeout(
      () => resolve([{ name, status: 'UNKNOWN', summary: new RunTimeLimit().message }]),
      Math.max(0, left),
    )
    timer.unref?.()
  })
  try {
    return await Promise.race([
      fn().catch((e: Error): CheckResult[] => [
        { name, status: 'UNKNOWN', summary: firstLine(e?.message ?? String(e)) },
      ]),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

function firstLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .find((l) => l.trim()) ?? 'failed'
  )
}

export interface MonitorRunOptions {
  /** `health` or `watch`: names the run in the lock message and the notification line. */
  name: string
  stateFile: string
  json: boolean
  /** The limit of the whole run (--timeout), notification included. */
  timeoutMs: number
  /** Runs the checks; may update `state` (restart counts, heals, cached service lists). */
  check: (state: MonitorState, budget: RunBudget) => Promise<CheckResult[]>
  notify: Omit<NotifySettings, 'timeoutMs'>
}

let printed = false

function printReport(report: Report, json: boolean): void {
  printed = true
  process.stdout.write(`${json ? formatReportJson(report) : formatReport(report)}\n`)
}

/** Prints a report of one UNKNOWN check and returns exit 3. */
export function reportUnknown(check: string, summary: string, json: boolean): number {
  printReport(aggregate(LABEL, [{ name: check, status: 'UNKNOWN', summary }]), json)
  return EXIT_CODE.UNKNOWN
}

/**
 * runScript's failure reporter for a monitoring script: a bad flag, a broken .env or a crash is
 * `POSTHOG UNKNOWN - <name>: <why>` (exit 3), which pages no one as "PostHog down". `applies`
 * says when the run is a check at all (watch --install is a setup step: exit 2 as usual).
 */
export function unknownOnFailure(
  name: string,
  applies: (argv: string[]) => boolean = () => true,
): FailureReporter {
  return ({ line, argv }) => (applies(argv) ? reportUnknown(name, line, argv.includes('--json')) : undefined)
}

/** Why the state file cannot be used, or undefined. */
function stateFileProblem(file: string): string | undefined {
  try {
    if (!fs.statSync(file).isFile()) return `${file} is not a file`
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== 'ENOENT') return `${file} cannot be used (${code})`
  }
  return undefined
}

function stateFileCheck(why: string): CheckResult {
  return {
    name: 'state-file',
    status: 'UNKNOWN',
    summary: `${why}: give --state-file a file in a folder this user can write`,
  }
}

function lockProblem(stateFile: string, e: unknown): CheckResult {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message
  return stateFileCheck(`no lock can be made beside ${stateFile} in ${path.dirname(stateFile)} (${code})`)
}

/**
 * A run that finds another still running reports UNKNOWN (exit 3) and changes nothing. Commands
 * still running when the report is out (a check given up on at its deadline) are killed, and
 * the process ends within the limit whatever is left.
 */
export async function runMonitor(o: MonitorRunOptions): Promise<number> {
  const budget = new RunBudget(o.timeoutMs, Boolean(o.notify.url))
  endAt(budget.end + 500, o.json)
  const problem = stateFileProblem(o.stateFile)
  if (problem) return finish(aggregate(LABEL, [stateFileCheck(problem)]), o.json)
  let release: () => void
  try {
    release = acquireLock(`${o.stateFile}.lock`, { command: `${o.name} run` })
  } catch (e) {
    if (!(e instanceof LockHeld)) return finish(aggregate(LABEL, [lockProblem(o.stateFile, e)]), o.json)
    const summary = `another ${o.name} run is still running: ${e.message}`
    return finish(aggregate(LABEL, [{ name: 'lock', status: 'UNKNOWN', summary }]), o.json)
  }
  try {
    const state = loadState(o.stateFile)
    const checks = await o.check(state, budget)
    killRunning()
    let report = aggregate(LABEL, checks)
    const notice = await notifyIfDue(state, report, { ...o.notify, timeoutMs: budget.notifyMs() })
    recordResult(state, report)
    try {
      saveState(o.stateFile, state)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error'
      report = aggregate(LABEL, [...checks, stateFileCheck(`${o.stateFile} cannot be written (${code})`)])
    }
    const code = finish(report, o.json)
    if (notice) warn(`${o.name}: ${notice}`)
    return code
  } finally {
    release()
  }
}

/** The last resort if something still holds the process at `time`: end it (UNKNOWN if nothing was said). */
function endAt(time: number, json: boolean): void {
  setTimeout(
    () => {
      if (!printed) process.exitCode = reportUnknown('run', new RunTimeLimit().message, json)
      process.exit()
    },
    Math.max(0, time - Date.now()),
  ).unref()
}

function finish(report: Report, json: boolean): number {
  printReport(report, json)
  killRunning()
  process.exitCode = EXIT_CODE[report.status]
  return EXIT_CODE[report.status]
}
