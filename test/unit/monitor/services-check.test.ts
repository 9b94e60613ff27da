import { describe, expect, it } from 'vitest'
import { CommandFailed } from '../../../lib/core/exec.mts'
import { dockerUnanswered, planHeals, servicesCheck } from '../../../lib/monitor/services-check.mts'
import { type ContainerInfo, evaluateServices, type ServiceProblem } from '../../../lib/stack/containers.mts'

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

describe('the services check', () => {
  const problem = (service: string, kind: ServiceProblem['kind'], healable = true): ServiceProblem => ({
    service,
    kind,
    text: `${service} ${kind}`,
    healable,
  })

  it('is CRITICAL unless every problem only warns, and marks what --heal restarted', () => {
    expect(servicesCheck([], 9, [])).toEqual({ name: 'services', status: 'OK', summary: '9 running' })
    expect(servicesCheck([problem('worker', 'restarts-growing', false)], 9, []).status).toBe('WARNING')
    expect(servicesCheck([problem('es', 'oom-killed', false)], 9, []).status).toBe('WARNING')
    const c = servicesCheck([problem('worker', 'exited'), problem('es', 'oom-killed', false)], 8, ['worker'])
    expect(c).toEqual({
      name: 'services',
      status: 'CRITICAL',
      summary: 'worker exited (restarted by --heal); es oom-killed',
    })
  })

  it('heals each healable service once an hour: up for a missing one, restart otherwise', () => {
    const now = Date.parse('2026-11-25T12:00:00Z')
    const problems = [
      problem('worker', 'exited'),
      problem('worker', 'unhealthy'),
      problem('capture', 'missing'),
      problem('db', 'unhealthy'),
      problem('plugins', 'restarts-growing', false),
    ]
    const heals = { db: ['2026-11-25T11:30:00.000Z'], capture: ['2026-11-25T10:00:00.000Z'] }
    expect(planHeals(problems, heals, now)).toEqual([
      { service: 'worker', verb: 'restart' },
      { service: 'capture', verb: 'up' },
      { service: 'db', restartedAt: '2026-11-25T11:30:00.000Z' },
    ])
  })

  it('is UNKNOWN with docker’s last line when docker does not answer', () => {
    const failed = new CommandFailed({
      argv: ['docker', 'info'],
      exitCode: 1,
      signal: null,
      stdout: '',
      stderr: 'warning\nCannot connect to the Docker daemon\n',
      ok: false,
      timedOut: false,
      durationMs: 5,
    })
    expect(dockerUnanswered('services', failed)).toEqual({
      name: 'services',
      status: 'UNKNOWN',
      summary: 'docker does not answer: Cannot connect to the Docker daemon',
    })
    expect(dockerUnanswered('docker-disk', new Error('spawn docker ENOENT')).summary).toBe(
      'docker does not answer: spawn docker ENOENT',
    )
  })
})
