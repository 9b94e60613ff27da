import { describe, expect, it } from 'vitest'
import { RunBudget, RunTimeLimit } from '../../../lib/monitor/monitor-run.mts'

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
})
