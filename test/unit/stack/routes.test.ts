// The capture path proven through the proxy: the route table, the classifier, and probeRoutes
// against a local server that answers per route as Caddy in front of the stack would.
import http from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { routeChecks } from '../../../lib/monitor/probe.mts'
import { classifyAnswer, enabledGroups, probeRoutes, ROUTE_GROUPS } from '../../../lib/stack/routes.mts'
import { type Listening, listenLocal } from '../../helpers/common.ts'

const servers: Listening[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

/** A proxy stand-in: status per path ('hang': never answers); records what it was asked. */
async function proxy(answers: Record<string, number | 'hang'>) {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers['content-type'] ?? ''}`.trim())
    const a = answers[req.url ?? ''] ?? 404
    if (a === 'hang') return
    req.resume()
    res.writeHead(a).end()
  })
  const l = await listenLocal(server)
  servers.push(l)
  return { baseUrl: `http://127.0.0.1:${l.port}`, seen }
}

const ALL = ['web', 'capture', 'feature-flags', 'replay-capture']

describe('classifyAnswer', () => {
  it('a capture without a token answering 400/401 proves the route; gateway errors and silence do not', () => {
    for (const status of [200, 204, 302, 400, 401, 403]) expect(classifyAnswer({ status }).ok).toBe(true)
    for (const status of [502, 503, 504])
      expect(classifyAnswer({ status })).toMatchObject({ ok: false, why: /proxy cannot reach/ })
    expect(classifyAnswer({ status: 404 })).toMatchObject({ ok: false, why: /nothing serves this path/ })
    expect(classifyAnswer({ status: 500 })).toMatchObject({ ok: false, why: /the service fails/ })
    expect(classifyAnswer({ error: 'no answer within 2 s' })).toEqual({
      ok: false,
      why: 'no answer within 2 s',
    })
  })
})

describe('the route table', () => {
  it('probes a group only when its service is enabled', () => {
    expect(enabledGroups(ALL).map((g) => g.group)).toEqual(['capture', 'flags', 'recordings', 'app'])
    expect(enabledGroups(['web', 'capture']).map((g) => g.group)).toEqual(['capture', 'app'])
    expect(ROUTE_GROUPS.find((g) => g.group === 'capture')!.probes.map((p) => p.path)).toEqual([
      '/e/',
      '/i/v0/e/',
      '/batch',
    ])
  })
})

describe('probeRoutes', () => {
  it('POSTs {} to capture, flags and replay (no token), GETs the app, all at once', async () => {
    const p = await proxy({ '/e/': 401, '/i/v0/e/': 401, '/batch': 400, '/flags': 401, '/s/': 401, '/': 302 })
    const results = await probeRoutes({ baseUrl: p.baseUrl, enabledServices: ALL, timeoutMs: 2000 })
    expect(results.every((r) => r.ok)).toBe(true)
    expect(results.map((r) => [r.group, r.path, r.status])).toEqual([
      ['capture', '/e/', 401],
      ['capture', '/i/v0/e/', 401],
      ['capture', '/batch', 400],
      ['flags', '/flags', 401],
      ['recordings', '/s/', 401],
      ['app', '/', 302],
    ])
    expect(p.seen.sort()).toEqual([
      'GET /',
      'POST /batch application/json',
      'POST /e/ application/json',
      'POST /flags application/json',
      'POST /i/v0/e/ application/json',
      'POST /s/ application/json',
    ])
    expect(routeChecks(results).map((c) => [c.name, c.status])).toEqual([
      ['capture', 'OK'],
      ['flags', 'OK'],
      ['recordings', 'OK'],
      ['app', 'OK'],
    ])
  })

  it('reports a dead capture as CRITICAL, dead flags or recordings as WARNING, each with what is lost', async () => {
    const p = await proxy({
      '/e/': 502,
      '/i/v0/e/': 401,
      '/batch': 'hang',
      '/flags': 503,
      '/s/': 404,
      '/': 302,
    })
    const results = await probeRoutes({ baseUrl: p.baseUrl, enabledServices: ALL, timeoutMs: 300 })
    expect(results.filter((r) => !r.ok).map((r) => r.path)).toEqual(['/e/', '/batch', '/flags', '/s/'])
    expect(results.find((r) => r.path === '/batch')).toMatchObject({
      ok: false,
      error: 'no answer within 0.3 s',
    })
    const checks = routeChecks(results)
    expect(checks).toEqual([
      {
        name: 'capture',
        status: 'CRITICAL',
        summary:
          'POST /e/ 502: the proxy cannot reach the service, POST /batch no answer within 0.3 s: events are lost; see docker compose logs capture',
      },
      {
        name: 'flags',
        status: 'WARNING',
        summary:
          'POST /flags 503: the proxy cannot reach the service: feature flags fall back to their defaults; see docker compose logs feature-flags',
      },
      {
        name: 'recordings',
        status: 'WARNING',
        summary:
          'POST /s/ 404: nothing serves this path: session recordings are lost; see docker compose logs replay-capture',
      },
      { name: 'app', status: 'OK', summary: 'GET / 302 (web answers)' },
    ])
  })

  it('says so when nothing listens', async () => {
    const p = await proxy({})
    await servers.pop()!.close()
    const [r] = await probeRoutes({ baseUrl: p.baseUrl, enabledServices: ['web'], timeoutMs: 1000 })
    expect(r).toMatchObject({ group: 'app', ok: false, error: 'connection refused' })
  })
})
