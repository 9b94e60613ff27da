// What the home health check (scripts/health.mts) and the VPS watch (remote/watch.mts) share:
// the check result model, monitoring-plugins output and exit codes, an HTTP(S) probe that
// verifies TLS and reads the certificate's expiry, the state file, and change-only webhook
// notifications. Runs under plain node 18+ once bundled: node: modules only, no Node-20 APIs.
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import os from 'node:os'
import type { TLSSocket } from 'node:tls'
import { printable, redact, UsageError } from '../core/cli.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { classifyAnswer, ROUTE_GROUPS, type RouteResult } from '../stack/routes.mts'

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

// ---------------------------------------------------------------------------------------------
// HTTP(S) probe

export interface ProbeOptions {
  timeoutMs: number
  /** PEM text of extra CAs to trust (tests use their own CA). */
  ca?: string
}

export interface ProbeResult {
  statusCode?: number
  body?: string
  /** Network or TLS error, e.g. `certificate has expired`, `timed out after 5 s`. */
  error?: string
  /** The server certificate's notAfter (https only). */
  certValidTo?: Date
}

interface RequestHandlers<T> {
  /** Reads the response and calls `finish` once with the result. */
  response: (res: http.IncomingMessage, finish: (r: T) => void) => void
  timeout: () => T
  error: (e: NodeJS.ErrnoException) => T
}

/**
 * One HTTP(S) request with a hard deadline that settles exactly once (response, error or timeout)
 * and then destroys the request. Never rejects.
 */
function requestOnce<T>(
  url: string,
  options: https.RequestOptions,
  timeoutMs: number,
  on: RequestHandlers<T>,
  body?: string,
): Promise<T> {
  return new Promise((resolve) => {
    let settled = false
    const finish = (r: T) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(r)
    }
    const target = new URL(url)
    const lib = target.protocol === 'https:' ? https : http
    const req = lib.request(target, { agent: false, ...options }, (res) => on.response(res, finish))
    const timer = setTimeout(() => finish(on.timeout()), timeoutMs)
    timer.unref?.()
    req.on('error', (e: NodeJS.ErrnoException) => finish(on.error(e)))
    req.end(body)
  })
}

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
        if (size < 4096) chunks.push(c)
        size += c.length
      })
      res.on('end', () =>
        finish({
          statusCode: res.statusCode,
          body: Buffer.concat(chunks).toString('utf8').slice(0, 4096),
          certValidTo: cert?.valid_to ? new Date(cert.valid_to) : undefined,
        }),
      )
      res.on('error', (e) => finish({ statusCode: res.statusCode, error: e.message }))
    },
    timeout: () => ({ error: `no answer within ${Math.round(opts.timeoutMs / 100) / 10} s` }),
    error: (e) => ({ error: describeNetError(e) }),
  })
}

function describeNetError(e: NodeJS.ErrnoException): string {
  if (e.code === 'ECONNREFUSED') return 'connection refused'
  if (e.code === 'ENOTFOUND') return 'name does not resolve'
  if (e.code === 'ECONNRESET') return 'connection reset'
  return e.message
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

/** PostHog's `/_health` answers 200 `ok`, or 503 `Migrations are not up to date` while migrating. */
export function healthCheckFromProbe(name: string, url: string, r: ProbeResult): CheckResult {
  if (r.error) return { name, status: 'CRITICAL', summary: `${url}: ${r.error}` }
  const body = (r.body ?? '').trim().split('\n')[0]!.slice(0, 80)
  if (r.statusCode === 200 && body === 'ok') return { name, status: 'OK', summary: `${url} answers ok` }
  return { name, status: 'CRITICAL', summary: `${url} answers ${r.statusCode}${body ? ` ${body}` : ''}` }
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
  if (url.startsWith('https:') && !r.error) checks.push(certCheck('certificate', r.certValidTo, now()))
  return checks
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
      () => resolve([{ name, status: 'UNKNOWN', summary: 'not finished within the run time limit' }]),
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

// ---------------------------------------------------------------------------------------------
// State file: the last result, the last notification, restart counts and heal history.

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

// ---------------------------------------------------------------------------------------------
// Change-only notifications

export type NotifyReason = 'changed' | 'reminder'

/**
 * Whether to notify: when the overall status differs from the last run's (a first run only when
 * it is not OK), when the last change could not be sent and the status still differs from the
 * last one notified, and while CRITICAL again once `remindHours` have passed since the last notice.
 */
export function notificationReason(
  state: MonitorState,
  report: Report,
  remindHours: number,
  now = new Date(),
): NotifyReason | undefined {
  const previous = state.last?.status ?? 'OK'
  if (report.status !== previous) return 'changed'
  if (state.unsentChange && report.status !== (state.lastNotified?.status ?? 'OK')) return 'changed'
  if (report.status !== 'CRITICAL') return undefined
  const lastTime = state.lastNotified ? Date.parse(state.lastNotified.time) : 0
  if (now.getTime() - lastTime >= remindHours * 3_600_000) return 'reminder'
  return undefined
}

export type WebhookFormat = 'json' | 'text'

export interface Notification {
  contentType: string
  headers: Record<string, string>
  body: string
}

export function buildNotification(
  report: Report,
  reason: NotifyReason,
  format: WebhookFormat,
  host = os.hostname(),
): Notification {
  const title = `${report.label} ${report.status}${reason === 'reminder' ? ' (still)' : ''}`
  if (format === 'text') {
    const text = `${title} on ${host} - ${report.summary}\n${report.checks
      .map((c) => `${c.status} ${c.name}: ${c.summary}`)
      .join('\n')}\n`
    return {
      contentType: 'text/plain; charset=utf-8',
      // ntfy reads these; other plain-text receivers ignore them.
      headers: {
        Title: title,
        Priority: report.status === 'CRITICAL' ? 'high' : 'default',
        Tags: report.status === 'OK' ? 'white_check_mark' : 'warning',
      },
      body: redact(printable(text)),
    }
  }
  const payload = {
    source: 'posthog-homelab',
    host,
    label: report.label,
    status: report.status,
    reason,
    summary: report.summary,
    time: report.time,
    checks: report.checks.map(({ name, status, summary }) => ({ name, status, summary })),
  }
  return { contentType: 'application/json', headers: {}, body: redact(printable(JSON.stringify(payload))) }
}

/** POSTs a notification; resolves to an error message, or undefined when the receiver took it. */
export function postNotification(
  url: string,
  n: Notification,
  timeoutMs: number,
  ca?: string,
): Promise<string | undefined> {
  const options = {
    method: 'POST',
    headers: { 'content-type': n.contentType, 'content-length': Buffer.byteLength(n.body), ...n.headers },
    ...(ca ? { ca } : {}),
  }
  return requestOnce<string | undefined>(
    url,
    options,
    timeoutMs,
    {
      response: (res, finish) => {
        res.resume()
        res.on('end', () =>
          finish(
            res.statusCode && res.statusCode < 300 ? undefined : `the webhook answered ${res.statusCode}`,
          ),
        )
      },
      timeout: () => 'the webhook did not answer in time',
      // Only the error code: a message could quote the URL, which may hold a token.
      error: (e) => `the webhook is unreachable (${e.code ?? 'error'})`,
    },
    n.body,
  )
}

export interface NotifySettings {
  url?: string
  format: WebhookFormat
  remindHours: number
  timeoutMs: number
  ca?: string
}

/**
 * Sends the notification the report calls for and records it in `state` (mutated). Returns a
 * line for the output, or undefined when nothing was due. A failed POST is not recorded, so the
 * next run tries again.
 */
export async function notifyIfDue(
  state: MonitorState,
  report: Report,
  settings: NotifySettings,
  now = new Date(),
): Promise<string | undefined> {
  const reason = notificationReason(state, report, settings.remindHours, now)
  if (!reason) return undefined
  if (!settings.url) return undefined
  const error = await postNotification(
    settings.url,
    buildNotification(report, reason, settings.format),
    settings.timeoutMs,
    settings.ca,
  )
  if (error) {
    if (reason === 'changed') state.unsentChange = true
    return `notification not sent: ${error}`
  }
  delete state.unsentChange
  state.lastNotified = { status: report.status, time: now.toISOString() }
  return `notification sent (${reason === 'changed' ? 'state changed' : 'reminder'})`
}

export function recordResult(state: MonitorState, report: Report): void {
  state.last = { status: report.status, time: report.time, summary: report.summary }
}

/** Moves `file` to `file.1` when it is larger than `maxBytes` (one old generation is kept). */
export function rotateLog(file: string, maxBytes: number): boolean {
  try {
    if (fs.statSync(file).size <= maxBytes) return false
    fs.renameSync(file, `${file}.1`)
    return true
  } catch {
    return false
  }
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
