import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { RunBudget, RunTimeLimit } from '../../../lib/monitor/monitor-run.mts'
import { buildNotification, notificationReason, notifyIfDue } from '../../../lib/monitor/notify.mts'
import { certCheck, healthCheckFromProbe } from '../../../lib/monitor/probe.mts'
import { aggregate, type CheckResult, formatReport, worst } from '../../../lib/monitor/report.mts'
import { emptyState, recordResult } from '../../../lib/monitor/state.mts'
import { type ContainerInfo, evaluateServices } from '../../../lib/stack/containers.mts'

const ok = (name: string): CheckResult => ({ name, status: 'OK', summary: 'fine' })

describe('report', () => {
  it('takes the worst status: CRITICAL over UNKNOWN over WARNING over OK', () => {
    expect(worst([])).toBe('OK')
    expect(worst(['OK', 'WARNING'])).toBe('WARNING')
    expect(worst(['WARNING', 'UNKNOWN'])).toBe('UNKNOWN')
    expect(worst(['UNKNOWN', 'CRITICAL', 'WARNING'])).toBe('CRITICAL')
  })

  it('prints the monitoring-plugins first line, then one line per check', () => {
    const r = aggregate('POSTHOG', [
      ok('local'),
      { name: 'services', status: 'CRITICAL', summary: 'web exited (1)' },
    ])
    const lines = formatReport(r).split('\n')
    expect(lines[0]).toBe('POSTHOG CRITICAL - services: web exited (1)')
    expect(lines.slice(1)).toEqual(['OK local: fine', 'CRITICAL services: web exited (1)'])
    expect(formatReport(aggregate('POSTHOG', [ok('a'), ok('b')])).split('\n')[0]).toBe(
      'POSTHOG OK - 2 checks ok',
    )
  })

  it('reads /_health answers', () => {
    expect(healthCheckFromProbe('local', 'u', { kind: 'http', status: 200, body: 'ok' }).status).toBe('OK')
    const migrating = healthCheckFromProbe('local', 'u', {
      kind: 'http',
      status: 503,
      body: 'Migrations are not up to date',
    })
    expect(migrating).toMatchObject({
      status: 'CRITICAL',
      summary: 'u answers 503 Migrations are not up to date',
    })
    expect(healthCheckFromProbe('local', 'u', { kind: 'refused', detail: 'ECONNREFUSED' }).summary).toBe(
      'u: connection refused',
    )
  })
})

describe('certificate days', () => {
  const now = new Date('2026-11-25T12:00:00Z')
  const inDays = (d: number) => new Date(now.getTime() + d * 86_400_000)
  it.each([
    [30, 'OK'],
    [14.5, 'OK'],
    [13.9, 'WARNING'],
    [3.1, 'WARNING'],
    [2.9, 'CRITICAL'],
    [0.2, 'CRITICAL'],
  ])('%d days left is %s', (days, status) => {
    expect(certCheck('certificate', inDays(days), now).status).toBe(status)
  })
})

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
})

describe('service evaluation', () => {
  const c = (service: string, patch: Partial<ContainerInfo> = {}): ContainerInfo => ({
    service,
    name: `posthog-${service}-1`,
    state: 'running',
    exitCode: 0,
    health: '',
    restartCount: 0,
    oomKilled: false,
    id: `id-${service}`,
    ...patch,
  })

  it('flags exited, restarting, unhealthy, missing and OOM-killed services; one-shots may exit 0', () => {
    const e = evaluateServices(
      ['web', 'worker', 'plugins', 'db', 'clickhouse', 'kafka-init', 'capture', 'elasticsearch'],
      ['kafka-init'],
      [
        c('web'),
        c('worker', { state: 'exited', exitCode: 1 }),
        c('plugins', { state: 'restarting', exitCode: 1, restartCount: 7 }),
        c('db', { health: 'unhealthy' }),
        c('kafka-init', { state: 'exited', exitCode: 0 }),
        c('elasticsearch', { state: 'exited', exitCode: 137, oomKilled: true }),
        c('clickhouse', { health: 'healthy' }),
      ],
      {},
    )
    expect(e.problems.map((p) => [p.service, p.kind])).toEqual([
      ['worker', 'exited'],
      ['plugins', 'restarting'],
      ['db', 'unhealthy'],
      ['capture', 'missing'],
      ['elasticsearch', 'oom-killed'],
    ])
    expect(e.running).toBe(3)
  })

  it('notices a restart count growing since the last run of the same container', () => {
    const prev = { worker: { id: 'id-worker', count: 2 } }
    expect(evaluateServices(['worker'], [], [c('worker', { restartCount: 2 })], prev).problems).toEqual([])
    expect(evaluateServices(['worker'], [], [c('worker', { restartCount: 3 })], prev).problems[0]?.text).toBe(
      'worker restarted 1 time since the last run',
    )
    // A new container starts counting from zero again: not a restart.
    expect(
      evaluateServices(['worker'], [], [c('worker', { restartCount: 3, id: 'new' })], prev).problems,
    ).toEqual([])
  })
})

describe('one run’s time budget', () => {
  it('leaves room for the webhook and the report inside --timeout', () => {
    const now = Date.now()
    const quiet = new RunBudget(20_000, false, now)
    expect(quiet.end).toBe(now + 20_000)
    expect(quiet.checksEnd).toBe(now + 19_700)
    const notifying = new RunBudget(20_000, true, now)
    expect(notifying.checksEnd).toBe(now + 20_000 - 5000 - 300)
    expect(notifying.callMs(10_000)).toBeLessThanOrEqual(10_000)
    expect(notifying.notifyMs()).toBeLessThanOrEqual(5000)
    // Consecutive calls share what is left; none starts once it is gone.
    const late = new RunBudget(1000, false, now - 950)
    expect(() => late.callMs()).toThrow(RunTimeLimit)
    expect(late.notifyMs()).toBeLessThanOrEqual(100)
  })

  it('keeps every check summary on one line (the first line, --json and the webhook carry them)', () => {
    const r = aggregate('POSTHOG', [
      { name: 'services', status: 'UNKNOWN', summary: 'docker failed\n    at AsyncLocalStorage.run (x)\n' },
    ])
    expect(r.checks[0]!.summary).toBe('docker failed at AsyncLocalStorage.run (x)')
    expect(formatReport(r).split('\n')[0]).toBe(
      'POSTHOG UNKNOWN - services: docker failed at AsyncLocalStorage.run (x)',
    )
  })
})
