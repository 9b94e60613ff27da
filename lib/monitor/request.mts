// One HTTP(S) request with a hard deadline, for the probes and the webhook POST of the
// monitoring checks. Bundled into the health and watch checks (plain node 18+): node: modules
// only, no zx, no yaml.
import http from 'node:http'
import https from 'node:https'

export interface RequestHandlers<T> {
  /** Reads the response and calls `finish` once with the result. */
  response: (res: http.IncomingMessage, finish: (r: T) => void) => void
  timeout: () => T
  error: (e: NodeJS.ErrnoException) => T
}

/**
 * One HTTP(S) request with a hard deadline that settles exactly once (response, error or timeout)
 * and then destroys the request. Never rejects.
 */
export function requestOnce<T>(
  url: string,
  options: https.RequestOptions,
  timeoutMs: number,
  on: RequestHandlers<T>,
  body?: string,
): Promise<T> {
  return new Promise((resolve) => {
    let settled = false
    const finish = (r: T) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(r)
    }
    const target = new URL(url)
    const lib = target.protocol === 'https:' ? https : http
    const req = lib.request(target, { agent: false, ...options }, (res) => on.response(res, finish))
    const timer = setTimeout(() => finish(on.timeout()), timeoutMs)
    timer.unref?.()
    req.on('error', (e: NodeJS.ErrnoException) => finish(on.error(e)))
    req.end(body)
  })
}
