// The HTTP(S) side of the monitoring checks: a `/_health` probe that verifies TLS and reads the
// certificate's expiry, the checks made of its answer, the `--ca-file` it trusts, and one check
// per route group probed through the local proxy (lib/stack/routes.mts).
// Bundled into the health and watch checks (plain node 18+): node: modules only, no zx, no yaml.
import fs from 'node:fs'
import type { TLSSocket } from 'node:tls'
import { type FlagSpec, UsageError } from '../core/cli.mts'
import { failedProbe, type ProbeResult } from '../core/health.mts'
import { classifyAnswer, ROUTE_GROUPS, type RouteResult } from '../stack/routes.mts'
import type { CheckResult } from './report.mts'
import { requestOnce } from './request.mts'

export interface ProbeOptions {
  timeoutMs: number
  /** PEM text of extra CAs to trust (tests use their own CA). */
  ca?: string
}

const BODY_BYTES = 4096

/** One GET with a hard deadline; TLS is always verified. Never throws. */
export function probe(url: string, opts: ProbeOptions): Promise<ProbeResult> {
  const options = {
    method: 'GET',
    headers: { 'user-agent': 'posthog-homelab-health' },
    ...(opts.ca ? { ca: opts.ca } : {}),
    rejectUnauthorized: true,
  }
  return requestOnce<ProbeResult>(url, options, opts.timeoutMs, {
    response: (res, finish) => {
      const isHttps = new URL(url).protocol === 'https:'
      const cert = isHttps ? (res.socket as TLSSocket).getPeerCertificate?.() : undefined
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        if (size < BODY_BYTES) chunks.push(c)
        size += c.length
      })
      res.on('end', () =>
        finish({
          kind: 'http',
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8').slice(0, BODY_BYTES),
          ...(cert?.valid_to ? { certValidTo: new Date(cert.valid_to) } : {}),
        }),
      )
      res.on('error', (e) => finish({ kind: 'error', detail: e.message }))
    },
    timeout: () => ({ kind: 'timeout', afterMs: opts.timeoutMs }),
    error: (e) => failedProbe(e.code, e.code === 'ENOTFOUND' ? 'name does not resolve' : e.message),
  })
}

/** Why a probe got no HTTP answer, e.g. `connection refused`, `certificate has expired`. */
function describeFailure(r: Exclude<ProbeResult, { kind: 'http' }>): string {
  if (r.kind === 'timeout') return `no answer within ${Math.round(r.afterMs / 100) / 10} s`
  if (r.kind === 'refused') return r.detail === 'ECONNRESET' ? 'connection reset' : 'connection refused'
  return r.detail
}

/** PostHog's `/_health` answers 200 `ok`, or 503 `Migrations are not up to date` while migrating. */
export function healthCheckFromProbe(name: string, url: string, r: ProbeResult): CheckResult {
  if (r.kind !== 'http') return { name, status: 'CRITICAL', summary: `${url}: ${describeFailure(r)}` }
  const body = r.body.trim().split('\n')[0]!.slice(0, 80)
  if (r.status === 200 && body === 'ok') return { name, status: 'OK', summary: `${url} answers ok` }
  return { name, status: 'CRITICAL', summary: `${url} answers ${r.status}${body ? ` ${body}` : ''}` }
}

export const CERT_WARNING_DAYS = 14
export const CERT_CRITICAL_DAYS = 3
const DAY_MS = 86_400_000

export function certDaysLeft(validTo: Date, now = new Date()): number {
  return (validTo.getTime() - now.getTime()) / DAY_MS
}

export function certCheck(name: string, validTo: Date | undefined, now = new Date()): CheckResult {
  if (!validTo) return { name, status: 'UNKNOWN', summary: 'no certificate seen' }
  const days = certDaysLeft(validTo, now)
  const shown = days < 1 ? `${Math.max(0, Math.round(days * 24))} hours` : `${Math.floor(days)} days`
  const summary = `expires in ${shown} (${validTo.toISOString().slice(0, 10)})`
  if (days < CERT_CRITICAL_DAYS) return { name, status: 'CRITICAL', summary }
  if (days < CERT_WARNING_DAYS) return { name, status: 'WARNING', summary }
  return { name, status: 'OK', summary }
}

/** The `/_health` check, plus the certificate check for an https URL. */
export async function checkHealthUrl(
  name: string,
  url: string,
  opts: ProbeOptions,
  now = () => new Date(),
): Promise<CheckResult[]> {
  const r = await probe(url, opts)
  const checks = [healthCheckFromProbe(name, url, r)]
  if (url.startsWith('https:') && r.kind === 'http')
    checks.push(certCheck('certificate', r.certValidTo, now()))
  return checks
}

/** `--ca-file`: extra CA to trust; `env` names the variable that may set it. */
export function caFileFlag<const E extends string>(env: E) {
  return {
    type: 'string',
    env,
    path: true,
    help: 'extra CA certificate (PEM) to trust',
  } as const satisfies FlagSpec
}

/** The PEM text of `--ca-file`; bad input (exit 2) when it cannot be read or holds no certificate. */
export function readCaFile(file: string | undefined): string | undefined {
  if (!file) return undefined
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (e) {
    throw new UsageError(
      `--ca-file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'}): give the PEM file of the CA that signed the site's certificate, or drop --ca-file`,
    )
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new UsageError(
      `--ca-file ${file} holds no PEM certificate: give the CA's .crt/.pem file, or drop --ca-file`,
    )
  return text
}

/** `127.0.0.1:18000/_health` parses as a URL with protocol `127.0.0.1:`: insist on http(s). */
export function checkHttpUrl(url: string | undefined, flag: string): void {
  if (url === undefined) return
  let ok = false
  try {
    ok = /^https?:$/.test(new URL(url).protocol)
  } catch {
    // not a URL at all
  }
  if (!ok)
    throw new UsageError(`${flag}=${url} must be an http(s) URL such as http://127.0.0.1:18000/_health`)
}

/** One health check per probed group: OK, or the group's severity with what is lost. */
export function routeChecks(results: RouteResult[], groups = ROUTE_GROUPS): CheckResult[] {
  const checks: CheckResult[] = []
  for (const g of groups) {
    const mine = results.filter((r) => r.group === g.group)
    if (mine.length === 0) continue
    const method = (p: string) => g.probes.find((x) => x.path === p)?.method ?? 'GET'
    const shown = (r: RouteResult) =>
      `${method(r.path)} ${r.path} ${r.ok ? r.status : (classifyAnswer(r).why ?? 'failed')}`
    const bad = mine.filter((r) => !r.ok)
    if (bad.length === 0) {
      checks.push({
        name: g.group,
        status: 'OK',
        summary: `${mine.map(shown).join(', ')} (${g.service} answers)`,
      })
      continue
    }
    checks.push({
      name: g.group,
      status: g.severity,
      summary: `${bad.map(shown).join(', ')}: ${g.loss}; see docker compose logs ${g.service}`,
    })
  }
  return checks
}
