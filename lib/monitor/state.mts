// The monitoring checks' state file: the last result, the last notification, restart counts and
// heal history, kept between runs. Bundled into the health and watch checks (plain node 18+):
// node: modules only, no zx, no yaml.
import fs from 'node:fs'
import { writeFileAtomic } from '../core/fs.mts'
import type { Report, Status } from './report.mts'

export interface MonitorState {
  version: 1
  last?: { status: Status; time: string; summary: string }
  lastNotified?: { status: Status; time: string }
  /** `<service>` -> `{ id, count }`: RestartCount of its container at the last run. */
  restartCounts: Record<string, { id: string; count: number }>
  /** `<service>` -> ISO times of restarts done by --heal (the last few kept). */
  heals: Record<string, string[]>
  /** Cached list of expected services with the compose files' fingerprint it was read from. */
  services?: { key: string; expected: string[]; oneShot: string[] }
  /** Container names seen at the last run (one `docker inspect` of them is the cheap path). */
  containerNames?: string[]
  /** A status change whose notification failed to go out; the next run sends it again. */
  unsentChange?: boolean
  /** Where Docker keeps its data (`docker info`), and when that was asked. */
  dockerData?: { rootDir: string; desktop: boolean; time: string }
}

export function emptyState(): MonitorState {
  return { version: 1, restartCounts: {}, heals: {} }
}

export function loadState(file: string): MonitorState {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MonitorState>
    if (parsed?.version !== 1) return emptyState()
    return { ...emptyState(), ...parsed } as MonitorState
  } catch {
    return emptyState() // missing or unreadable: start over rather than fail the check
  }
}

export function saveState(file: string, state: MonitorState): void {
  writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 })
}

export function recordResult(state: MonitorState, report: Report): void {
  state.last = { status: report.status, time: report.time, summary: report.summary }
}
