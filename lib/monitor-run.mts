// One monitoring run as the home health check (scripts/health.mts) and the VPS watch
// (remote/watch.mts) both do it: take the state file's lock, run the checks, notify on a change,
// record the result, print the report and return the monitoring-plugins exit code. Each script
// brings only its own checks. Bundled into both (plain node 18+): keep it free of yaml and zx.
import { warn } from './cli.mts'
import { acquireLock } from './lock.mts'
import {
  aggregate,
  type CheckResult,
  EXIT_CODE,
  formatReport,
  formatReportJson,
  loadState,
  type MonitorState,
  type NotifySettings,
  notifyIfDue,
  type Report,
  recordResult,
  saveState,
} from './monitor.mts'

export interface MonitorRunOptions {
  /** `health` or `watch`: names the run in the lock message and the notification line. */
  name: string
  stateFile: string
  json: boolean
  /** Runs the checks; may update `state` (restart counts, heals, cached service lists). */
  check: (state: MonitorState) => Promise<CheckResult[]>
  /** Asked for once the checks are done (a timeout may depend on the time left). */
  notify: () => NotifySettings
}

function printReport(report: Report, json: boolean): void {
  process.stdout.write(`${json ? formatReportJson(report) : formatReport(report)}\n`)
}

/** A run that finds another still running reports UNKNOWN (exit 3) and changes nothing. */
export async function runMonitor(o: MonitorRunOptions): Promise<number> {
  let release: () => void
  try {
    release = acquireLock(`${o.stateFile}.lock`)
  } catch (e) {
    const summary = `another ${o.name} run is still running: ${(e as Error).message}`
    printReport(aggregate('POSTHOG', [{ name: 'lock', status: 'UNKNOWN', summary }]), o.json)
    return EXIT_CODE.UNKNOWN
  }
  try {
    const state = loadState(o.stateFile)
    const report = aggregate('POSTHOG', await o.check(state))
    const notice = await notifyIfDue(state, report, o.notify())
    recordResult(state, report)
    saveState(o.stateFile, state)
    printReport(report, o.json)
    if (notice) warn(`${o.name}: ${notice}`)
    return EXIT_CODE[report.status]
  } finally {
    release()
  }
}
