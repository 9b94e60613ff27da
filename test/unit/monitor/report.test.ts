import { describe, expect, it } from 'vitest'
import { aggregate, type CheckResult, formatReport, worst } from '../../../lib/monitor/report.mts'

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
