// Change-only webhook notifications of the monitoring checks: a POST when the overall status
// changes, a reminder while it stays CRITICAL, a failed POST sent again on the next run.
// Bundled into the health and watch checks (plain node 18+): node: modules only, no zx, no yaml.
import os from 'node:os'
import { printable, redact } from '../core/cli.mts'
import type { Report } from './report.mts'
import { requestOnce } from './request.mts'
import type { MonitorState } from './state.mts'

/** Where the notification settings come from (the environment, .env or the watch settings file). */
export const NOTIFY_KEYS = ['HEALTH_WEBHOOK_URL', 'HEALTH_WEBHOOK_FORMAT', 'HEALTH_REMIND_HOURS'] as const

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

/** The notification settings from the NOTIFY_KEYS values (validated already: see envErrors). */
export function notifySettings(
  values: Partial<Record<(typeof NOTIFY_KEYS)[number], string>>,
  ca: string | undefined,
): Omit<NotifySettings, 'timeoutMs'> {
  return {
    url: values.HEALTH_WEBHOOK_URL || undefined,
    format: values.HEALTH_WEBHOOK_FORMAT === 'text' ? 'text' : 'json',
    remindHours: Number(values.HEALTH_REMIND_HOURS),
    ca,
  }
}
