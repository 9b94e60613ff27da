import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { servicesFromModel } from '../../../lib/core/docker.mts'
import { startProgress } from '../../../lib/core/health.mts'
import type { ContainerInfo } from '../../../lib/stack/containers.mts'
import { serviceReadiness } from '../../../lib/stack/readiness.mts'
import { dataStoreServices, stackLockDir, webAloneServices } from '../../../lib/stack/startup.mts'

const c = (service: string, state: string, more: Partial<ContainerInfo> = {}): ContainerInfo => ({
  service,
  name: `posthog-${service}-1`,
  state,
  exitCode: 0,
  health: '',
  restartCount: 0,
  oomKilled: false,
  id: `id-${service}`,
  ...more,
})

describe('phases', () => {
  it('starts the known data stores that are enabled, in a fixed order', () => {
    expect(dataStoreServices(['web', 'kafka', 'db', 'plugins', 'clickhouse', 'redis7'])).toEqual([
      'db',
      'redis7',
      'clickhouse',
      'kafka',
    ])
  })
  it('starts web with its proxy in the web-alone phase', () => {
    expect(webAloneServices(['db', 'proxy', 'web', 'plugins'])).toEqual(['web', 'proxy'])
  })
  it('shares one lock directory under STACK_DIR', () => {
    expect(stackLockDir({ stackDir: '/x/stack' })).toBe('/x/stack/.lock')
  })
})

describe('serviceReadiness: healthy means the whole stack', () => {
  const expected = ['db', 'web', 'plugins', 'worker', 'clickhouse', 'kafka-init', 'feature-flags', 'capture']
  it('fails services that are missing, exited, restarting, OOM-killed or unhealthy', () => {
    const r = serviceReadiness(
      expected,
      ['kafka-init'],
      [
        c('db', 'running', { health: 'healthy' }),
        c('web', 'running'),
        c('plugins', 'restarting', { exitCode: 1, restartCount: 7 }),
        c('clickhouse', 'exited', { exitCode: 137, oomKilled: true }),
        c('kafka-init', 'exited'),
        c('feature-flags', 'running', { health: 'unhealthy' }),
      ],
    )
    expect(r.filter((x) => x.readiness === 'failed')).toEqual([
      { service: 'plugins', readiness: 'failed', text: 'keeps restarting (7 restarts, last exit 1)' },
      { service: 'worker', readiness: 'failed', text: 'has no container' },
      { service: 'clickhouse', readiness: 'failed', text: 'exited with code 137, OOM-killed' },
      { service: 'feature-flags', readiness: 'failed', text: 'is running but unhealthy' },
      { service: 'capture', readiness: 'failed', text: 'has no container' },
    ])
    expect(r.filter((x) => x.readiness === 'ready').map((x) => x.service)).toEqual([
      'db',
      'web',
      'kafka-init',
    ])
  })
  it('waits for a healthcheck still starting, a created container and a one-shot still running', () => {
    const r = serviceReadiness(
      ['db', 'web', 'kafka-init'],
      ['kafka-init'],
      [c('db', 'running', { health: 'starting' }), c('web', 'created'), c('kafka-init', 'running')],
    )
    expect(r.map((x) => x.readiness)).toEqual(['pending', 'pending', 'pending'])
  })
  it('fails a one-shot that exited non-zero, and any other service that exited 0', () => {
    const r = serviceReadiness(
      ['kafka-init', 'web'],
      ['kafka-init'],
      [c('kafka-init', 'exited', { exitCode: 1 }), c('web', 'exited')],
    )
    expect(r.map((x) => x.text)).toEqual(['exited with code 1', 'exited with code 0'])
  })
  it('fails a container that restarted while settling (same container, higher count)', () => {
    const before = { plugins: { id: 'id-plugins', count: 2 } }
    const [again] = serviceReadiness(['plugins'], [], [c('plugins', 'running', { restartCount: 3 })], before)
    expect(again).toEqual({
      service: 'plugins',
      readiness: 'failed',
      text: 'restarted 1 times while settling',
    })
    const [fresh] = serviceReadiness(
      ['plugins'],
      [],
      [c('plugins', 'running', { restartCount: 0, id: 'new' })],
      before,
    )
    expect(fresh?.readiness).toBe('ready')
  })
})

describe('servicesFromModel', () => {
  it('expects every service of the merged model but replicas 0, one-shots by their dependants', () => {
    expect(
      servicesFromModel({
        web: { depends_on: { db: { condition: 'service_healthy' } } },
        db: {},
        'kafka-init': {},
        'property-defs-rs': { depends_on: { 'kafka-init': { condition: 'service_completed_successfully' } } },
        asyncmigrationscheck: { deploy: { replicas: 0 } },
      }),
    ).toEqual({ expected: ['db', 'kafka-init', 'property-defs-rs', 'web'], oneShot: ['kafka-init'] })
  })
})

describe('startProgress', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })
  function stream(isTTY: boolean) {
    const chunks: string[] = []
    return {
      chunks,
      s: { isTTY, columns: 60, write: (c: string) => chunks.push(c) } as unknown as NodeJS.WriteStream,
    }
  }
  const snapshot = () => ({ label: 'waiting for PostHog', elapsedMs: 61_000, running: 3, total: 9 })

  it('rewrites one live line on a TTY and clears it at the end', () => {
    const { chunks, s } = stream(true)
    const stop = startProgress({ stream: s, snapshot, liveEveryMs: 20 })
    vi.advanceTimersByTime(40)
    stop()
    expect(chunks).toHaveLength(4)
    expect(chunks[0]).toBe('\r\x1b[2Kwaiting for PostHog: 1m01s, 3/9 containers running')
    expect(chunks.at(-1)).toBe('\r\x1b[2K')
    expect(chunks.join('')).not.toContain('\n')
  })

  it('prints plain lines at the plain interval without a TTY', () => {
    const { chunks, s } = stream(false)
    const stop = startProgress({ stream: s, snapshot, plainEveryMs: 30 })
    vi.advanceTimersByTime(29)
    expect(chunks).toEqual([]) // nothing before the first interval
    vi.advanceTimersByTime(1)
    stop()
    expect(chunks).toEqual(['waiting for PostHog: 1m01s, 3/9 containers running\n'])
  })
})
