// The capture path proven, not just `/_health`: through the local proxy (Caddy), each route
// group whose service is enabled gets a request that needs no project token. A capture POST
// without a valid token answering 400/401 proves the route reaches the capture service; a
// 502/503/504 (Caddy cannot reach the service), a 404 (nothing serves that path) or no answer
// does not. The route table is data; classifying an answer is pure; probing is thin I/O.
// Used by the health check (one check per group) and by `up` after the start.
import http from 'node:http'
import https from 'node:https'

export interface RouteProbe {
  method: 'GET' | 'POST'
  path: string
}

export interface RouteGroup {
  group: 'capture' | 'flags' | 'recordings' | 'app'
  /** The compose service behind it: the group is probed only when that service is enabled. */
  service: string
  /** What the group being dead means for the health report. */
  severity: 'CRITICAL' | 'WARNING'
  /** What stops working for the users of the site when it is dead. */
  loss: string
  probes: RouteProbe[]
}

/** Caddy's routes in PostHog's hobby stack (`@capture`, `@flags`, `@replay-capture`, default). */
export const ROUTE_GROUPS: RouteGroup[] = [
  {
    group: 'capture',
    service: 'capture',
    severity: 'CRITICAL',
    loss: 'events are lost',
    probes: [
      { method: 'POST', path: '/e/' },
      { method: 'POST', path: '/i/v0/e/' },
      { method: 'POST', path: '/batch' },
    ],
  },
  {
    group: 'flags',
    service: 'feature-flags',
    severity: 'WARNING',
    loss: 'feature flags fall back to their defaults',
    probes: [{ method: 'POST', path: '/flags' }],
  },
  {
    group: 'recordings',
    service: 'replay-capture',
    severity: 'WARNING',
    loss: 'session recordings are lost',
    probes: [{ method: 'POST', path: '/s/' }],
  },
  {
    group: 'app',
    service: 'web',
    severity: 'CRITICAL',
    loss: 'the app does not load',
    probes: [{ method: 'GET', path: '/' }],
  },
]

export interface RouteResult {
  group: RouteGroup['group']
  path: string
  ok: boolean
  status?: number
  error?: string
}

export interface ProbeRoutesOptions {
  /** The local proxy, e.g. http://127.0.0.1:18000 */
  baseUrl: string
  /** The services that run (DISABLED_SERVICES and replicas: 0 taken out). */
  enabledServices: string[]
  timeoutMs: number
  groups?: RouteGroup[]
}

/** The groups to probe: those whose service is enabled. */
export function enabledGroups(enabledServices: string[], groups = ROUTE_GROUPS): RouteGroup[] {
  return groups.filter((g) => enabledServices.includes(g.service))
}

/**
 * Whether an answer proves the route: any answer of the service itself (2xx, 3xx, 400, 401,
 * 403, ...). Not: a gateway error of the proxy, a 404 (nothing serves the path), another 5xx
 * (the service answers but is broken), or no answer at all.
 */
export function classifyAnswer(answer: { status?: number; error?: string }): { ok: boolean; why?: string } {
  if (answer.error !== undefined) return { ok: false, why: answer.error }
  const s = answer.status
  if (s === undefined) return { ok: false, why: 'no answer' }
  if (s === 502 || s === 503 || s === 504)
    return { ok: false, why: `${s}: the proxy cannot reach the service` }
  if (s === 404) return { ok: false, why: '404: nothing serves this path' }
  if (s >= 500) return { ok: false, why: `${s}: the service fails` }
  return { ok: true }
}

/** One request with a hard deadline; never throws. The body (a capture without token) is `{}`. */
function request(
  url: string,
  probe: RouteProbe,
  timeoutMs: number,
): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    let settled = false
    const target = new URL(probe.path, url)
    const lib = target.protocol === 'https:' ? https : http
    const body = probe.method === 'POST' ? '{}' : undefined
    const headers: Record<string, string | number> = { 'user-agent': 'posthog-homelab-health' }
    if (body) Object.assign(headers, { 'content-type': 'application/json', 'content-length': body.length })
    const finish = (r: { status?: number; error?: string }) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(r)
    }
    const req = lib.request(target, { method: probe.method, headers, agent: false }, (res) => {
      res.resume()
      res.on('end', () => finish({ status: res.statusCode }))
      res.on('error', () => finish({ status: res.statusCode }))
    })
    const timer = setTimeout(
      () => finish({ error: `no answer within ${Math.round(timeoutMs / 100) / 10} s` }),
      timeoutMs,
    )
    req.on('error', (e: NodeJS.ErrnoException) =>
      finish({ error: e.code === 'ECONNREFUSED' ? 'connection refused' : (e.code ?? e.message) }),
    )
    req.end(body)
  })
}

/** Probes every path of every enabled group at once. */
export async function probeRoutes(o: ProbeRoutesOptions): Promise<RouteResult[]> {
  const probes = enabledGroups(o.enabledServices, o.groups).flatMap((g) =>
    g.probes.map((p) => ({ group: g.group, probe: p })),
  )
  return Promise.all(
    probes.map(async ({ group, probe }) => {
      const answer = await request(o.baseUrl, probe, o.timeoutMs)
      const { ok } = classifyAnswer(answer)
      return { group, path: probe.path, ok, ...answer }
    }),
  )
}
