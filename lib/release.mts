// Pinned, checksum-verified installs of frp release binaries (frpc at home, frps on the VPS).
// Asset naming follows frp's goreleaser setup: frp_<ver>_<os>_<arch>.tar.gz next to
// frp_sha256_checksums.txt ("<hex>  <file>" lines) under <base>/v<ver>/.
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, UsageError } from './cli.mts'
import { run } from './exec.mts'
import { backupFile } from './fsutil.mts'

export const CHECKSUMS_FILE = 'frp_sha256_checksums.txt'

const OS_NAMES: Record<string, string> = {
  darwin: 'darwin',
  linux: 'linux',
  freebsd: 'freebsd',
  openbsd: 'openbsd',
}
const ARCH_NAMES: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  riscv64: 'riscv64',
  loong64: 'loong64',
}

/** frp's `<os>_<arch>` for a node platform/arch pair, e.g. darwin/arm64 → darwin_arm64. */
export function frpTarget(platform: string = process.platform, arch: string = process.arch): string {
  const o = OS_NAMES[platform]
  const a = ARCH_NAMES[arch]
  if (!o || !a)
    throw new UsageError(
      `frp publishes no tar.gz release this toolkit knows for ${platform}/${arch}: install frp by hand`,
    )
  return `${o}_${a}`
}

/** `frp_0.70.1_linux_amd64` (the archive's top-level directory too). */
export function releaseDirName(version: string, platform?: string, arch?: string): string {
  return `frp_${version}_${frpTarget(platform, arch)}`
}

export function assetName(version: string, platform?: string, arch?: string): string {
  return `${releaseDirName(version, platform, arch)}.tar.gz`
}

export function releaseUrls(
  baseUrl: string,
  version: string,
  asset: string,
): { archive: string; checksums: string } {
  const base = `${baseUrl.replace(/\/+$/, '')}/v${version}`
  return { archive: `${base}/${asset}`, checksums: `${base}/${CHECKSUMS_FILE}` }
}

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
    'check the network, FRP_VERSION and FRP_RELEASE_BASE_URL, then run this again',
  )
}

/** What `<bin> --version` prints (frp prints the bare version, e.g. `0.70.1`), or undefined. */
export async function installedVersion(binPath: string): Promise<string | undefined> {
  if (!fs.existsSync(binPath)) return undefined
  const r = await run(binPath, ['--version'], { nothrow: true, timeout: '15s' })
  return r.exitCode === 0 ? r.stdout.trim() : undefined
}

export interface InstallOptions {
  version: string
  baseUrl: string
  installDir: string
  binaries: Array<'frpc' | 'frps'>
  platform?: string
  arch?: string
  say?: (line: string) => void
  download?: DownloadOptions
}

export interface InstallResult {
  /** 'unchanged' when every binary already reported the pinned version. */
  result: 'installed' | 'unchanged'
  paths: Record<string, string>
}

/** Verifies the archive against the release's checksum list; throws (installing nothing) on any doubt. */
export function verifyArchive(archive: Buffer, checksumsText: string, asset: string): void {
  const expected = parseChecksums(checksumsText).get(asset)
  if (!expected)
    throw new RuntimeFailure(
      `${CHECKSUMS_FILE} lists no checksum for ${asset}; nothing was installed`,
      'check FRP_VERSION and FRP_RELEASE_BASE_URL',
    )
  const actual = sha256(archive)
  if (actual !== expected)
    throw new RuntimeFailure(
      `checksum mismatch for ${asset} (expected ${expected.slice(0, 12)}…, got ${actual.slice(0, 12)}…); nothing was installed`,
      'the download is corrupt or tampered with: try again later, and check FRP_RELEASE_BASE_URL',
    )
}

function installFileAtomic(src: string, dest: string): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true })
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    fs.copyFileSync(src, tmp)
    fs.chmodSync(tmp, 0o755)
    if (fs.existsSync(dest)) backupFile(dest)
    fs.renameSync(tmp, dest)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
}

/**
 * Installs the pinned frp binaries into `installDir`: skipped when they already report the
 * version; otherwise download, SHA-256 check, extract with tar, and atomic rename per binary.
 */
export async function installFrp(o: InstallOptions): Promise<InstallResult> {
  const paths = Object.fromEntries(o.binaries.map((b) => [b, path.join(o.installDir, b)]))
  const versions = await Promise.all(o.binaries.map((b) => installedVersion(paths[b]!)))
  if (versions.every((v) => v === o.version)) return { result: 'unchanged', paths }

  const asset = assetName(o.version, o.platform, o.arch)
  const urls = releaseUrls(o.baseUrl, o.version, asset)
  o.say?.(`downloading ${asset} (frp ${o.version})`)
  const checksums = (await download(urls.checksums, { ...o.download, timeoutMs: 30_000 })).toString('utf8')
  const shown = downloadProgress(`downloading ${asset}`)
  let archive: Buffer
  try {
    archive = await download(urls.archive, { progress: shown.progress, ...o.download })
  } finally {
    shown.done()
  }
  verifyArchive(archive, checksums, asset)

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'frp-release-'))
  try {
    const file = path.join(work, asset)
    fs.writeFileSync(file, archive)
    const tar = await run('tar', ['-xzf', file, '-C', work], { nothrow: true, timeout: '120s' })
    if (tar.exitCode !== 0)
      throw new RuntimeFailure(
        `could not unpack ${asset}: ${tar.stderr.trim()}`,
        'nothing was installed; try again',
      )
    const dir = path.join(work, releaseDirName(o.version, o.platform, o.arch))
    for (const b of o.binaries)
      if (!fs.existsSync(path.join(dir, b)))
        throw new RuntimeFailure(
          `${asset} holds no ${b}`,
          'nothing was installed; check FRP_RELEASE_BASE_URL',
        )
    for (const b of o.binaries) installFileAtomic(path.join(dir, b), paths[b]!)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES')
      throw new RuntimeFailure(
        `cannot write to ${o.installDir}`,
        'run with sudo, or choose another directory with --install-dir',
      )
    throw e
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  return { result: 'installed', paths }
}
