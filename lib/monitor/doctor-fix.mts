// `doctor --fix`: the safe fixes of the findings, as docker compose commands run in order
// (migrations in web, then restarts, then starts), and the report of what was done.
import { RuntimeFailure } from '../core/cli.mts'
import { compose } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { FIX_ORDER, type FixAction } from './catalog.mts'
import { type Finding, redactEvidence } from './doctor-finding.mts'

export interface FixStep {
  action: FixAction
  args: string[]
  /** What the user sees. */
  label: string
}

/** The compose commands for the safe findings, in order: migrate, then restart, then start. */
export function planFixes(findings: Finding[]): FixStep[] {
  const safe = findings.filter((f) => f.safe && f.action)
  const services = (actions: FixAction[]) => [
    ...new Set(safe.filter((f) => actions.includes(f.action!)).map((f) => f.service)),
  ]
  const steps: FixStep[] = []
  for (const action of FIX_ORDER) {
    if (action === 'migrate' && safe.some((f) => f.action === 'migrate'))
      steps.push({
        action,
        args: ['exec', '-T', 'web', './bin/migrate'],
        label: 'docker compose exec -T web ./bin/migrate',
      })
    // Services that failed on the schema are restarted once the migrations ran.
    const list = action === 'restart' ? services(['migrate', 'restart']).filter((s) => s !== 'web') : []
    const start = action === 'start' ? services(['start']) : []
    if (list.length)
      steps.push({ action, args: ['restart', ...list], label: `docker compose restart ${list.join(' ')}` })
    if (start.length)
      steps.push({ action, args: ['up', '-d', ...start], label: `docker compose up -d ${start.join(' ')}` })
  }
  return steps
}

/** Runs the steps; stops at the first that fails. `log` gets a line per step. */
export async function applyFixes(cfg: Config, steps: FixStep[], log: (line: string) => void): Promise<void> {
  for (const step of steps) {
    log(`running: ${step.label}`)
    const started = Date.now()
    const ticker = setInterval(
      () => log(`  still running ${step.label} (${Math.round((Date.now() - started) / 1000)} s)`),
      30_000,
    )
    try {
      const timeout = step.action === 'migrate' ? '30m' : '5m'
      const res = await compose(cfg.stackDir, step.args, { timeout, nothrow: true })
      if (!res.ok) {
        const why =
          (res.stderr || res.stdout).trim().split('\n').at(-1) || `exit ${res.exitCode ?? 'timeout'}`
        throw new RuntimeFailure(
          `${step.label} failed: ${redactEvidence(why)}`,
          'fix that first, then run doctor again',
        )
      }
    } finally {
      clearInterval(ticker)
    }
  }
}

/** `doctor --fix --json`: what was found, the fixes applied (in order), what is left. */
export function fixReport(found: Finding[], applied: string[], after: Finding[]) {
  return { found, applied, after }
}
