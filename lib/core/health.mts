// Polling PostHog's `/_health` through the local Caddy proxy, and the progress line shown while
// waiting. Probing is I/O (global fetch with per-request AbortSignal timeouts); classifying a probe
// and formatting progress are pure. ProbeResult is also what the monitoring checks' HTTPS probe
// returns (lib/monitor/probe.mts).
import { redact } from './cli.mts'

/**
 * What one HTTP(S) probe of `/_health` saw: the poller's here and the monitoring checks' (which
 * also read the certificate) alike. `detail` is the error code of a refused or reset connection,
 * or a short text saying what else went wrong.
 */
export type ProbeResult =
  | { kind: 'refused'; detail: string }
  | { kind: 'timeout'; afterMs: number }
  | { kind: 'error'; detail: string }
  | {
      kind: 'http'
      status: number
      body: string
      /** The server certificate's notAfter (https only, when the prober reads it). */
      certValidTo?: Date
    }

/** A request that got no answer: a refused or reset connection, or another error. */
export function failedProbe(code: string | undefined, detail: string): ProbeResult {
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return { kind: 'refused', detail: code }
  return { kind: 'error', detail }
}

export const MIGRATIONS_PENDING = 'Migrations are not up to date'

export function healthUrl(port: number): string {
  return `http://127.0.0.1:${port}/_health`
}

/** 200 with body `ok`: the stack is up. */
export function isHealthy(r: ProbeResult | undefined): boolean {
  return r?.kind === 'http' && r.status === 200 && r.body.trim() === 'ok'
}

/**
 * `web` has finished its migrations and serves requests: Django answered something other than a
 * gateway error from Caddy (502/504: web not listening yet) or 503 "Migrations are not up to date".
 */
export function isPastMigrations(r: ProbeResult | undefined): boolean {
  return r?.kind === 'http' && r.status < 500
}

/** Short human text for the last probe, e.g. `503 Migrations are not up to date`, `refused`. */
export function describeProbe(r: ProbeResult | undefined): string {
  if (!r) return 'no answer yet'
  if (r.kind === 'refused') return 'connection refused'
  if (r.kind === 'timeout') return 'request timed out'
  if (r.kind === 'error') return `error (${r.detail})`
  const body = r.body.trim().split('\n')[0]!.slice(0, 60)
  return `${r.status}${body ? ` ${body}` : ''}`
}

function errorCode(e: unknown): string {
  const err = e as { name?: string; code?: string; cause?: { code?: string; message?: string } }
  return err?.cause?.code ?? err?.code ?? err?.name ?? 'unknown'
}

/** One GET with its own timeout; never throws. */
export async function probeHealth(
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  const timeout = AbortSignal.timeout(timeoutMs)
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout
  try {
    const res = await fetch(url, { signal: combined, redirect: 'manual' })
    const body = (await res.text()).slice(0, 2000)
    return { kind: 'http', status: res.status, body }
  } catch (e) {
    if (timeout.aborted) return { kind: 'timeout', afterMs: timeoutMs }
    const code = errorCode(e)
    return failedProbe(code, code)
  }
}

export interface PollOptions {
  url: string
  /** Give up after this long. */
  timeoutMs: number
  /** Condition that ends the wait; default: 200 `ok`. */
  until?: (r: ProbeResult) => boolean
  /** A fresh request is launched this often (default 250 ms), so a hung one never delays detection. */
  intervalMs?: number
  /** Each request's own timeout (default 2 s: it is one local request). */
  requestTimeoutMs?: number
  /** At most this many requests at once (default 8: with the defaults, never the limiting factor). */
  maxInFlight?: number
  /** Called with every probe result as it arrives. */
  onProbe?: (r: ProbeResult) => void
  signal?: AbortSignal
}

export interface PollResult {
  ok: boolean
  /** The most recent answer (by arrival). */
  last: ProbeResult | undefined
  elapsedMs: number
  probes: number
}

/**
 * Polls `url` until `until` holds for an answer or `timeoutMs` passes. Requests overlap: one is
 * launched every `intervalMs` while fewer than `maxInFlight` are pending, so a request hanging on a
 * half-started server never hides the moment the stack becomes healthy.
 */
export function pollHealth(opts: PollOptions): Promise<PollResult> {
  const until = opts.until ?? isHealthy
  const intervalMs = opts.intervalMs ?? 250
  const requestTimeoutMs = opts.requestTimeoutMs ?? 2000
  const maxInFlight = opts.maxInFlight ?? 8
  const started = Date.now()
  const stop = new AbortController()
  let inFlight = 0
  let probes = 0
  let last: ProbeResult | undefined

  return new Promise<PollResult>((resolve) => {
    let done = false
    const finish = (ok: boolean) => {
      if (done) return
      done = true
      clearInterval(ticker)
      clearTimeout(deadline)
      opts.signal?.removeEventListener('abort', onAbort)
      stop.abort()
      resolve({ ok, last, elapsedMs: Date.now() - started, probes })
    }
    const onAbort = () => finish(false)
    const launch = () => {
      if (done || inFlight >= maxInFlight) return
      inFlight++
      probes++
      void probeHealth(opts.url, requestTimeoutMs, stop.signal).then((r) => {
        inFlight--
        if (done) return
        last = r
        opts.onProbe?.(r)
        if (until(r)) finish(true)
      })
    }
    const ticker = setInterval(launch, intervalMs)
    const deadline = setTimeout(() => finish(false), opts.timeoutMs)
    if (opts.signal?.aborted) return finish(false)
    opts.signal?.addEventListener('abort', onAbort)
    launch()
  })
}

// ---------------------------------------------------------------------------------------------
// Progress while waiting: a live line on a TTY, a plain line every 30 s otherwise.

export interface ProgressSnapshot {
  label: string
  elapsedMs: number
  /** Containers running / containers expected to run; omitted while unknown. */
  running?: number
  total?: number
  last?: ProbeResult
  /** Whether a /_health status is part of this wait. */
  showHealth?: boolean
}

export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (h) return `${h}h${String(m).padStart(2, '0')}m${String(sec).padStart(2, '0')}s`
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`
  return `${sec}s`
}

/** e.g. `waiting for web's migrations: 2m05s, 9/9 containers running, /_health: 503 Migrations ...` */
export function formatProgress(p: ProgressSnapshot): string {
  const parts = [formatElapsed(p.elapsedMs)]
  if (p.total !== undefined && p.running !== undefined)
    parts.push(`${p.running}/${p.total} containers running`)
  if (p.showHealth) parts.push(`/_health: ${describeProbe(p.last)}`)
  return `${p.label}: ${parts.join(', ')}`
}

export interface ProgressOptions {
  /** Current state, called on every tick. */
  snapshot: () => ProgressSnapshot
  /** Live line (rewritten in place) when true; plain lines otherwise. */
  tty?: boolean
  stream?: NodeJS.WriteStream
  liveEveryMs?: number
  plainEveryMs?: number
}

/** Starts reporting progress; the returned function stops it (and ends the live line). */
export function startProgress(opts: ProgressOptions): () => void {
  const stream = opts.stream ?? process.stdout
  const tty = opts.tty ?? Boolean(stream.isTTY)
  let drawn = false
  const tick = () => {
    const line = redact(formatProgress(opts.snapshot()))
    if (tty) {
      const width = stream.columns ? stream.columns - 1 : 120
      stream.write(`\r\x1b[2K${line.slice(0, width)}`)
      drawn = true
    } else stream.write(`${line}\n`)
  }
  const timer = setInterval(tick, tty ? (opts.liveEveryMs ?? 1000) : (opts.plainEveryMs ?? 30_000))
  if (tty) tick()
  return () => {
    clearInterval(timer)
    if (drawn) stream.write('\r\x1b[2K')
  }
}
