// Downloads over HTTPS: a GET with a timeout per attempt and retries with backoff, progress for
// people, and the sha256 checks that release files are verified with.
import { createHash } from 'node:crypto'
import { RuntimeFailure } from './cli.mts'

/** Parses `sha256sum` output: `<64 hex>  <file>` (a `*` before the name marks binary mode). */
export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>()
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$/.exec(line.trim())
    if (m) sums.set(m[2]!, m[1]!.toLowerCase())
  }
  return sums
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export interface DownloadOptions {
  timeoutMs?: number
  attempts?: number
  /** Called with the bytes received so far and the expected total (0 when unknown) on every chunk. */
  progress?: (received: number, total: number) => void
  /** Delay before attempt n+1 in ms (tests shorten it). */
  backoffMs?: (attempt: number) => number
  /** What to do when every attempt failed. */
  hint?: string
}

class HttpError extends Error {
  readonly status: number
  constructor(status: number, url: string) {
    super(`HTTP ${status} for ${url}`)
    this.status = status
  }
}

async function fetchOnce(
  url: string,
  timeoutMs: number,
  progress?: (received: number, total: number) => void,
): Promise<Buffer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' })
  if (!res.ok || !res.body) throw new HttpError(res.status, url)
  const total = Number(res.headers.get('content-length') ?? 0)
  const chunks: Buffer[] = []
  let received = 0
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(Buffer.from(value))
    received += value.length
    progress?.(received, total)
  }
  return Buffer.concat(chunks)
}

/**
 * Download progress for people: a live line on a TTY (redrawn at most once a second), otherwise
 * a plain line every 30 s. Returns the callback and a `done` that ends the live line.
 */
export function downloadProgress(
  label: string,
  stream: NodeJS.WriteStream = process.stdout,
  tty = Boolean(stream.isTTY),
): { progress: (received: number, total: number) => void; done: () => void } {
  const every = tty ? 1000 : 30_000
  let last = Date.now()
  let drawn = false
  const mb = (n: number) => (n / 1024 / 1024).toFixed(1)
  return {
    progress: (received, total) => {
      if (Date.now() - last < every) return
      last = Date.now()
      const line = `${label}: ${mb(received)} MB${total ? ` of ${mb(total)} MB` : ''}`
      if (tty) {
        stream.write(`\r\x1b[2K${line}`)
        drawn = true
      } else stream.write(`${line}\n`)
    },
    done: () => {
      if (drawn) stream.write('\r\x1b[2K')
    },
  }
}

/** GET with a timeout per attempt and retries with backoff; 4xx answers are not retried. */
export async function download(url: string, opts: DownloadOptions = {}): Promise<Buffer> {
  const attempts = opts.attempts ?? 3
  const backoff = opts.backoffMs ?? ((n: number) => 1000 * 2 ** (n - 1))
  let last: unknown
  for (let n = 1; n <= attempts; n++) {
    try {
      return await fetchOnce(url, opts.timeoutMs ?? 120_000, opts.progress)
    } catch (e) {
      last = e
      if (e instanceof HttpError && e.status >= 400 && e.status < 500) break
      if (n < attempts) await new Promise((r) => setTimeout(r, backoff(n)))
    }
  }
  const why =
    last instanceof Error ? (last.name === 'TimeoutError' ? 'timed out' : last.message) : String(last)
  throw new RuntimeFailure(
    `could not download ${url}: ${why}`,
    opts.hint ?? 'check the network, then run this again',
  )
}
