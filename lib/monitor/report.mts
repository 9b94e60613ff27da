// The monitoring checks' result model and report: the worst status wins, the first line is
// `POSTHOG STATUS - summary` and the exit code follows the monitoring-plugins convention.
// Bundled into the health and watch checks (plain node 18+): node: modules only, no zx, no yaml.
import { printable, redact } from '../core/cli.mts'

export type Status = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN'

export interface CheckResult {
  name: string
  status: Status
  summary: string
  detail?: string
}

export interface Report {
  label: string
  status: Status
  summary: string
  time: string
  checks: CheckResult[]
}

/** monitoring-plugins exit codes. */
export const EXIT_CODE: Record<Status, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 }

// The overall status is the worst one; a CRITICAL outranks an UNKNOWN (something is known to be
// broken), and an UNKNOWN outranks a WARNING (something could not be checked at all).
const RANK: Record<Status, number> = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 }

export function worst(statuses: Status[]): Status {
  return statuses.reduce<Status>((a, b) => (RANK[b] > RANK[a] ? b : a), 'OK')
}

/** A check's summary is one line: the report's first line and the webhook carry it as it is. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

export function aggregate(label: string, results: CheckResult[], now = new Date()): Report {
  const checks = results.map((c) => ({ ...c, summary: oneLine(c.summary) }))
  const status = worst(checks.map((c) => c.status))
  const bad = checks.filter((c) => c.status !== 'OK')
  const summary =
    bad.length === 0
      ? `${checks.length} check${checks.length === 1 ? '' : 's'} ok`
      : bad.map((c) => `${c.name}: ${c.summary}`).join('; ')
  return { label, status, summary, time: now.toISOString(), checks }
}

/** First line `LABEL STATUS - summary`, then one line per check (monitoring-plugins style). */
export function formatReport(report: Report): string {
  const lines = [`${report.label} ${report.status} - ${report.summary}`]
  for (const c of report.checks) {
    lines.push(`${c.status} ${c.name}: ${c.summary}`)
    if (c.detail) lines.push(...c.detail.split('\n').map((l) => `  ${l}`))
  }
  return redact(printable(lines.join('\n')))
}

export function formatReportJson(report: Report): string {
  return redact(printable(JSON.stringify(report)))
}
