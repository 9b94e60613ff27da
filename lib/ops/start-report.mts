// What `up` says when the ordered start fails: why, the services that are not ready with their
// last log lines, and the doctor's findings for those services (likely causes and their fixes).
import type { StackServices } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { analyse, formatFindings } from '../monitor/doctor.mts'
import { describeStuckServices } from '../stack/readiness.mts'
import { describeStartFailure, type StartResult, startFailureServices } from '../stack/startup.mts'

export async function startFailureReport(
  cfg: Config,
  result: Extract<StartResult, { ok: false }>,
  ctx: { startedAt: Date; services: StackServices },
): Promise<string[]> {
  const lines = [describeStartFailure(result)]
  lines.push(...(await describeStuckServices(cfg, result.expected, ctx.services.oneShot)))
  // Pre-flight already passed. Services the ordered start has not reached yet are not problems;
  // after /_health, only the failing ones are.
  try {
    const concerned = new Set([...startFailureServices(result), 'docker', 'host'])
    const findings = (await analyse(cfg, { preflight: false, since: ctx.startedAt.toISOString() })).filter(
      (f) => concerned.has(f.service),
    )
    if (findings.length) lines.push(...formatFindings(findings).split('\n'))
  } catch (e) {
    lines.push(`(the diagnosis failed too: ${(e as Error).message.split('\n')[0]})`)
  }
  lines.push('Look again later with: npx tsx scripts/doctor.mts')
  return lines
}
