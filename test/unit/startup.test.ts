import { describe, expect, it } from 'vitest'
import type { ComposePsEntry } from '../../lib/docker.mts'
import { startProgress } from '../../lib/health.mts'
import {
  dataStoreServices,
  findStuckServices,
  type InspectEntry,
  stackLockDir,
  webAloneServices,
} from '../../lib/startup.mts'

const ps = (Service: string, State: string, ExitCode = 0, Health = ''): ComposePsEntry => ({
  Name: `posthog-${Service}-1`,
  Service,
  State,
  Status: '',
  Health,
  ExitCode,
})
const inspect = (service: string, RestartCount: number, OOMKilled = false, ExitCode = 0): InspectEntry => ({
  Name: `/posthog-${service}-1`,
  RestartCount,
  State: { OOMKilled, ExitCode },
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

describe('findStuckServices', () => {
  it('names services that are missing, exited, restarting, crash-looping or unhealthy', () => {
    const stuck = findStuckServices(
      ['db', 'web', 'plugins', 'worker', 'clickhouse', 'kafka-init', 'feature-flags', 'capture'],
      [
        ps('db', 'running'),
        ps('web', 'running'),
        ps('plugins', 'restarting', 1),
        ps('clickhouse', 'exited', 137),
        ps('kafka-init', 'exited', 0),
        ps('feature-flags', 'running', 0, 'unhealthy'),
      ],
      [inspect('web', 3), inspect('plugins', 7), inspect('clickhouse', 0, true, 137)],
    )
    expect(stuck).toEqual([
      { service: 'web', problem: 'keeps restarting (3 restarts, last exit 0)' },
      { service: 'plugins', problem: 'keeps restarting (7 restarts, last exit 0)' },
      { service: 'worker', problem: 'has no container' },
      { service: 'clickhouse', problem: 'exited with code 137, OOM-killed' },
      { service: 'feature-flags', problem: 'is running but unhealthy' },
      { service: 'capture', problem: 'has no container' },
    ])
  })
  it('accepts one-shot services that finished or never ran', () => {
    expect(
      findStuckServices(['kafka-init', 'asyncmigrationscheck'], [ps('kafka-init', 'exited', 0)], []),
    ).toEqual([])
    expect(findStuckServices(['kafka-init'], [ps('kafka-init', 'exited', 1)], [])).toEqual([
      { service: 'kafka-init', problem: 'exited with code 1' },
    ])
  })
})

describe('startProgress', () => {
  function stream(isTTY: boolean) {
    const chunks: string[] = []
    return {
      chunks,
      s: { isTTY, columns: 60, write: (c: string) => chunks.push(c) } as unknown as NodeJS.WriteStream,
    }
  }
  const snapshot = () => ({ label: 'waiting for PostHog', elapsedMs: 61_000, running: 3, total: 9 })

  it('rewrites one live line on a TTY and clears it at the end', async () => {
    const { chunks, s } = stream(true)
    const stop = startProgress({ stream: s, snapshot, liveEveryMs: 20 })
    await new Promise((r) => setTimeout(r, 70))
    stop()
    expect(chunks.length).toBeGreaterThanOrEqual(3)
    expect(chunks[0]).toBe('\r\x1b[2Kwaiting for PostHog: 1m01s, 3/9 containers running')
    expect(chunks.at(-1)).toBe('\r\x1b[2K')
    expect(chunks.join('')).not.toContain('\n')
  })

  it('prints plain lines at the plain interval without a TTY', async () => {
    const { chunks, s } = stream(false)
    const stop = startProgress({ stream: s, snapshot, plainEveryMs: 30 })
    await new Promise((r) => setTimeout(r, 10))
    expect(chunks).toEqual([]) // nothing before the first interval
    await new Promise((r) => setTimeout(r, 60))
    stop()
    expect(chunks.length).toBeGreaterThanOrEqual(1)
    expect(chunks[0]).toBe('waiting for PostHog: 1m01s, 3/9 containers running\n')
  })
})
