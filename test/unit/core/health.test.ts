import http from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import {
  describeProbe,
  failedProbe,
  formatElapsed,
  formatProgress,
  healthUrl,
  isHealthy,
  isPastMigrations,
  MIGRATIONS_PENDING,
  pollHealth,
} from '../../../lib/core/health.mts'
import { freePort, type Listening, listenLocal } from '../../helpers/common.ts'

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

const servers: Listening[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

async function serve(handler: Handler, port = 0): Promise<number> {
  const server = await listenLocal(http.createServer(handler), port)
  servers.push(server)
  return server.port
}

const answer = (res: http.ServerResponse, status: number, body: string) => {
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(body)
}

describe('classifying answers', () => {
  it('knows healthy, migrations pending and gateway errors', () => {
    expect(isHealthy({ kind: 'http', status: 200, body: 'ok' })).toBe(true)
    expect(isHealthy({ kind: 'http', status: 200, body: 'starting' })).toBe(false)
    expect(isPastMigrations({ kind: 'http', status: 503, body: MIGRATIONS_PENDING })).toBe(false)
    expect(isPastMigrations({ kind: 'http', status: 502, body: '' })).toBe(false)
    expect(isPastMigrations({ kind: 'refused', detail: 'ECONNREFUSED' })).toBe(false)
    expect(isPastMigrations({ kind: 'http', status: 200, body: 'ok' })).toBe(true)
    expect(describeProbe({ kind: 'http', status: 503, body: `${MIGRATIONS_PENDING}\n` })).toBe(
      `503 ${MIGRATIONS_PENDING}`,
    )
    expect(describeProbe(undefined)).toBe('no answer yet')
  })
  it('tells a refused or reset connection from other errors', () => {
    expect(failedProbe('ECONNREFUSED', 'connect ECONNREFUSED')).toEqual({
      kind: 'refused',
      detail: 'ECONNREFUSED',
    })
    expect(failedProbe('ECONNRESET', 'socket hang up')).toEqual({ kind: 'refused', detail: 'ECONNRESET' })
    expect(failedProbe('ENOTFOUND', 'name does not resolve')).toEqual({
      kind: 'error',
      detail: 'name does not resolve',
    })
    expect(describeProbe(failedProbe(undefined, 'UND_ERR_SOCKET'))).toBe('error (UND_ERR_SOCKET)')
  })
  it('formats progress', () => {
    expect(formatElapsed(3_725_000)).toBe('1h02m05s')
    expect(formatElapsed(125_000)).toBe('2m05s')
    expect(formatElapsed(9_900)).toBe('9s')
    expect(
      formatProgress({
        label: 'waiting for PostHog',
        elapsedMs: 65_000,
        running: 12,
        total: 30,
        showHealth: true,
        last: { kind: 'refused', detail: 'ECONNREFUSED' },
      }),
    ).toBe('waiting for PostHog: 1m05s, 12/30 containers running, /_health: connection refused')
  })
})

describe('pollHealth against a real local server', () => {
  it('waits through 503 "Migrations are not up to date", then sees 200 ok', async () => {
    let n = 0
    const port = await serve((_req, res) =>
      ++n <= 3 ? answer(res, 503, MIGRATIONS_PENDING) : answer(res, 200, 'ok'),
    )
    const seen: string[] = []
    const r = await pollHealth({
      url: healthUrl(port),
      timeoutMs: 10_000,
      intervalMs: 50,
      onProbe: (p) => seen.push(describeProbe(p)),
    })
    expect(r.ok).toBe(true)
    expect(seen).toContain(`503 ${MIGRATIONS_PENDING}`)
    expect(describeProbe(r.last)).toBe('200 ok')
  })

  it('sees connection refused, then 200 once the server starts', async () => {
    const port = await freePort()
    const seen: string[] = []
    const poll = pollHealth({
      url: healthUrl(port),
      timeoutMs: 10_000,
      intervalMs: 50,
      onProbe: (p) => seen.push(p.kind),
    })
    await new Promise((r) => setTimeout(r, 400))
    const startedAt = Date.now()
    await serve((_req, res) => answer(res, 200, 'ok'), port)
    const r = await poll
    expect(r.ok).toBe(true)
    expect(seen).toContain('refused')
    // Far below a sequential poller's interval; the 1 s goal itself is measured by bench/health-detect.mts.
    expect(Date.now() - startedAt).toBeLessThan(2000)
  })

  it('is not held up by a request that hangs (each would take 10 s to time out)', async () => {
    let healthyAt = 0
    const port = await serve((_req, res) => {
      if (!healthyAt) return // hang: never answer
      answer(res, 200, 'ok')
    })
    const poll = pollHealth({ url: healthUrl(port), timeoutMs: 20_000, requestTimeoutMs: 10_000 })
    await new Promise((r) => setTimeout(r, 1200))
    healthyAt = Date.now()
    const r = await poll
    expect(r.ok).toBe(true)
    // Detected about 250 ms after the flip (bench/health-detect.mts); a blocked poller would need 10 s.
    expect(Date.now() - healthyAt).toBeLessThan(2000)
  })

  it('times out when never healthy, reporting the last status', async () => {
    const port = await serve((_req, res) => answer(res, 502, ''))
    const r = await pollHealth({ url: healthUrl(port), timeoutMs: 700, intervalMs: 50 })
    expect(r.ok).toBe(false)
    expect(r.elapsedMs).toBeGreaterThanOrEqual(650)
    expect(describeProbe(r.last)).toBe('502')
  })

  it('reports a request timeout as the last status', async () => {
    const port = await serve(() => {})
    const r = await pollHealth({ url: healthUrl(port), timeoutMs: 800, requestTimeoutMs: 200 })
    expect(r.ok).toBe(false)
    expect(r.last).toEqual({ kind: 'timeout', afterMs: 200 })
  })

  it('the web-alone phase ends when migrations are done, before the stack is fully healthy', async () => {
    // 502 while web starts, 503 while it migrates, then web answers but the stack is not healthy.
    const server = () => {
      let n = 0
      return serve((_req, res) => {
        n++
        if (n <= 2) return answer(res, 502, '')
        if (n <= 4) return answer(res, 503, MIGRATIONS_PENDING)
        answer(res, 200, 'web only')
      })
    }
    const past = await pollHealth({
      url: healthUrl(await server()),
      timeoutMs: 10_000,
      intervalMs: 50,
      until: isPastMigrations,
    })
    expect(past.ok).toBe(true)
    expect(describeProbe(past.last)).toBe('200 web only')
    // The same answers never satisfy the default condition (200 ok): the states are told apart.
    const healthy = await pollHealth({ url: healthUrl(await server()), timeoutMs: 1500, intervalMs: 50 })
    expect(healthy.ok).toBe(false)
    expect(describeProbe(healthy.last)).toBe('200 web only')
  })

  it('ends on the first answer its condition accepts, not on a later healthy one', async () => {
    let n = 0
    const port = await serve((_req, res) =>
      ++n <= 3 ? answer(res, 503, MIGRATIONS_PENDING) : answer(res, 200, 'ok'),
    )
    const r = await pollHealth({
      url: healthUrl(port),
      timeoutMs: 10_000,
      intervalMs: 50,
      until: (p) => p.kind === 'http' && p.status === 503,
    })
    expect(r.ok).toBe(true)
    expect(describeProbe(r.last)).toBe(`503 ${MIGRATIONS_PENDING}`)
  })

  it('stops when aborted', async () => {
    const port = await serve((_req, res) => answer(res, 502, ''))
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 200)
    const r = await pollHealth({ url: healthUrl(port), timeoutMs: 10_000, signal: ac.signal })
    expect(r.ok).toBe(false)
    expect(r.elapsedMs).toBeLessThan(2000)
  })
})
