// One thing doctor found: the service, the line that shows it (secrets redacted), the cause, the
// fix and whether `doctor --fix` may apply it; repeats of one signature for one service merge.
import { printable, redact } from '../core/cli.mts'
import { describeCause, describeFix, type FixAction, type Signature } from './catalog.mts'

export interface Finding {
  /** Catalog id, or a generic one (`exited`, `unhealthy`, `memory-near-limit`, `preflight-disk`, ...). */
  id: string
  service: string
  /** The line that shows it, secrets redacted. */
  evidence: string
  cause: string
  fix: string
  /** `doctor --fix` may apply it. */
  safe: boolean
  action?: FixAction
  /** How many lines matched (the evidence is the latest). */
  count: number
}

const EVIDENCE_MAX = 300

/**
 * An evidence line as it may be printed: one line, terminal escape sequences dropped, control
 * characters shown, secrets (registered, or anything that looks like one) masked, and cut short.
 */
export function redactEvidence(line: string): string {
  const masked = redact(printable(line, false))
  return masked.length > EVIDENCE_MAX ? `${masked.slice(0, EVIDENCE_MAX)}…` : masked
}

export function fromSignature(sig: Signature, service: string, line: string): Finding {
  return {
    id: sig.id,
    service,
    evidence: redactEvidence(line.trim()),
    cause: describeCause(sig, service),
    fix: describeFix(sig, service),
    safe: sig.safe,
    ...(sig.action ? { action: sig.action } : {}),
    count: 1,
  }
}

/** Adds a finding, merging repeats of the same signature for the same service. */
export function addFinding(findings: Finding[], f: Finding): void {
  const same = findings.find((x) => x.id === f.id && x.service === f.service)
  if (!same) findings.push(f)
  else {
    same.count += f.count
    same.evidence = f.evidence
  }
}
