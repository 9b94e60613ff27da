// Pinned, checksum-verified installs of frp release binaries (frpc at home, frps on the VPS).
// Asset naming follows frp's goreleaser setup: frp_<ver>_<os>_<arch>.tar.gz next to
// frp_sha256_checksums.txt ("<hex>  <file>" lines) under <base>/v<ver>/.
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import {
  type DownloadOptions,
  download,
  downloadProgress,
  parseChecksums,
  sha256,
} from '../core/download.mts'
import { run } from '../core/exec.mts'
import { backupFile } from '../core/fs.mts'

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
  const hint = 'check the network, FRP_VERSION and FRP_RELEASE_BASE_URL, then run this again'
  const checksums = (await download(urls.checksums, { hint, ...o.download, timeoutMs: 30_000 })).toString(
    'utf8',
  )
  const shown = downloadProgress(`downloading ${asset}`)
  let archive: Buffer
  try {
    archive = await download(urls.archive, { hint, progress: shown.progress, ...o.download })
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

/** One frp binary at the pinned version, saying whether it was installed now or already there. */
export async function installFrpBinary(
  kind: 'frpc' | 'frps',
  o: Pick<InstallOptions, 'version' | 'baseUrl' | 'installDir'>,
  say: (line: string) => void,
): Promise<{ bin: string; installed: boolean }> {
  const r = await installFrp({ ...o, binaries: [kind], say })
  const bin = r.paths[kind]!
  const installed = r.result === 'installed'
  say(installed ? `installed ${kind} ${o.version} at ${bin}` : `${kind} ${o.version} already installed`)
  return { bin, installed }
}
