import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  buildNotification,
  notificationReason,
  notifyIfDue,
  notifySettings,
} from '../../../lib/monitor/notify.mts'
import { aggregate } from '../../../lib/monitor/report.mts'
import { emptyState, recordResult } from '../../../lib/monitor/state.mts'

describe('notifications', () => {
  const now = new Date('2026-11-25T12:00:00Z')
  const report = (status: 'OK' | 'WARNING' | 'CRITICAL') =>
    aggregate('POSTHOG', [{ name: 'local', status, summary: status === 'OK' ? 'fine' : 'broken' }], now)
  const stateWith = (last: string, notifiedHoursAgo?: number) => ({
    ...emptyState(),
    last: { status: last as 'OK', time: now.toISOString(), summary: '' },
    ...(notifiedHoursAgo !== undefined
      ? {
          lastNotified: {
            status: last as 'OK',
            time: new Date(now.getTime() - notifiedHoursAgo * 3_600_000).toISOString(),
          },
        }
      : {}),
  })

  it('notifies on a change only', () => {
    expect(notificationReason(emptyState(), report('OK'), 6, now)).toBeUndefined()
    expect(notificationReason(emptyState(), report('CRITICAL'), 6, now)).toBe('changed')
    expect(notificationReason(stateWith('OK'), report('WARNING'), 6, now)).toBe('changed')
    expect(notificationReason(stateWith('CRITICAL'), report('OK'), 6, now)).toBe('changed')
    expect(notificationReason(stateWith('WARNING'), report('WARNING'), 6, now)).toBeUndefined()
  })

  it('reminds while critical, at most every remindHours', () => {
    expect(notificationReason(stateWith('CRITICAL', 1), report('CRITICAL'), 6, now)).toBeUndefined()
    expect(notificationReason(stateWith('CRITICAL', 5.9), report('CRITICAL'), 6, now)).toBeUndefined()
    expect(notificationReason(stateWith('CRITICAL', 6), report('CRITICAL'), 6, now)).toBe('reminder')
  })

  it('sends a change again on the next run when its POST failed, unless the status turned back', () => {
    const unsent = { ...stateWith('OK', 1), unsentChange: true }
    unsent.lastNotified!.status = 'CRITICAL'
    expect(notificationReason(unsent, report('OK'), 6, now)).toBe('changed')
    expect(notificationReason({ ...unsent, unsentChange: undefined }, report('OK'), 6, now)).toBeUndefined()
    const turnedBack = { ...stateWith('CRITICAL', 1), unsentChange: true }
    expect(notificationReason(turnedBack, report('CRITICAL'), 6, now)).toBeUndefined()
  })

  it('retries a recovery notice that the webhook refused (real POSTs to a local receiver)', async () => {
    const answers = [500, 200]
    const bodies: string[] = []
    const server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c) => {
        body += c
      })
      req.on('end', () => {
        bodies.push(body)
        res.writeHead(answers.shift() ?? 200).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
      const settings = { url, format: 'json' as const, remindHours: 6, timeoutMs: 3000 }
      const state = stateWith('CRITICAL', 1)
      const recovered = report('OK')
      expect(await notifyIfDue(state, recovered, settings, now)).toMatch(/not sent: the webhook answered 500/)
      recordResult(state, recovered)
      expect(await notifyIfDue(state, report('OK'), settings, now)).toBe('notification sent (state changed)')
      expect(bodies.map((b) => JSON.parse(b).status)).toEqual(['OK', 'OK'])
      expect(state.unsentChange).toBeUndefined()
      expect(state.lastNotified?.status).toBe('OK')
      expect(await notifyIfDue(state, report('OK'), settings, now)).toBeUndefined()
      expect(bodies).toHaveLength(2)
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })

  it('builds JSON and plain-text bodies', () => {
    const json = JSON.parse(buildNotification(report('CRITICAL'), 'changed', 'json', 'box').body)
    expect(json).toMatchObject({
      status: 'CRITICAL',
      host: 'box',
      reason: 'changed',
      summary: 'local: broken',
    })
    const text = buildNotification(report('CRITICAL'), 'reminder', 'text', 'box')
    expect(text.contentType).toMatch(/^text\/plain/)
    expect(text.body.split('\n')[0]).toBe('POSTHOG CRITICAL (still) on box - local: broken')
    expect(text.headers.Priority).toBe('high')
  })

  it('reads the notification settings', () => {
    expect(notifySettings({ HEALTH_WEBHOOK_URL: '', HEALTH_REMIND_HOURS: '6' }, undefined)).toEqual({
      url: undefined,
      format: 'json',
      remindHours: 6,
      ca: undefined,
    })
    expect(
      notifySettings(
        { HEALTH_WEBHOOK_URL: 'https://ntfy.sh/x', HEALTH_WEBHOOK_FORMAT: 'text', HEALTH_REMIND_HOURS: '1' },
        'PEM',
      ),
    ).toEqual({ url: 'https://ntfy.sh/x', format: 'text', remindHours: 1, ca: 'PEM' })
  })
})
