// Free disk where the stack lives: STACK_DIR's filesystem, and where Docker keeps images,
// containers and volumes (`docker info`'s DockerRootDir; on Docker Desktop the VM's disk image,
// a sparse Docker.raw whose apparent size is the VM disk's size and whose allocated blocks are
// what the VM has written). Thresholds, the judgement and the biggest consumers are pure; the
// probes are thin file-system reads. Bundled into the health check: node: modules only.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type FlagSpec, UsageError } from './cli.mts'

const GiB = 1024 ** 3
/** Free space a step that writes to the stack needs: images and data land before the first healthy start. */
export const MIN_FREE_DISK_FIRST_START = 15 * GiB
export const MIN_FREE_DISK = 5 * GiB

/** `--min-free-disk`, shared by the steps that check free disk before they change anything. */
export const MIN_FREE_DISK_FLAG = {
  type: 'string',
  env: 'HOMELAB_MIN_FREE_DISK_GB',
  help: 'free GB needed where this step writes (default 15 before the first healthy start, 5 after)',
} as const satisfies FlagSpec

/** The `--min-free-disk` value in bytes, or its default; not a number of GB is bad input. */
export function minFreeDiskBytes(raw: string | undefined, firstStart: boolean): number {
  if (raw === undefined) return firstStart ? MIN_FREE_DISK_FIRST_START : MIN_FREE_DISK
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new UsageError(`--min-free-disk=${raw} must be a number of GB`)
  return Number(raw) * GiB
}

export type DiskStatus = 'OK' | 'WARNING' | 'CRITICAL'

export interface DiskSpace {
  /** Bytes an unprivileged process may still write. */
  free: number
  total: number
}

export interface Threshold {
  /** Below this share of the disk free (0..100). */
  percent: number
  /** Below this many bytes free. */
  bytes: number
}

export interface DiskThresholds {
  warning: Threshold
  critical: Threshold
}

/** WARNING under 15 % or 10 GiB free, CRITICAL under 5 % or 3 GiB. */
export const DEFAULT_DISK_THRESHOLDS: DiskThresholds = {
  warning: { percent: 15, bytes: 10 * GiB },
  critical: { percent: 5, bytes: 3 * GiB },
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgt])?(?:i?b)?$/i

/** Parses `15%,10GiB` (either part may be left out: `5%`, `3g`). */
export function parseThreshold(raw: string, name: string): Threshold {
  const t: Threshold = { percent: 0, bytes: 0 }
  for (const part of raw.split(',').map((p) => p.trim())) {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(part)
    const size = SIZE.exec(part)
    if (pct && Number(pct[1]) <= 100) t.percent = Number(pct[1])
    else if (size) {
      const unit = { '': 1, k: 1024, m: 1024 ** 2, g: GiB, t: 1024 ** 4 }[(size[2] ?? '').toLowerCase()]!
      t.bytes = Number(size[1]) * unit
    } else throw new UsageError(`${name}=${raw} must be a share and/or a size free, e.g. 15%,10GiB`)
  }
  return t
}

function below(space: DiskSpace, t: Threshold): boolean {
  return space.free < t.bytes || (space.total > 0 && (space.free / space.total) * 100 < t.percent)
}

export function diskStatus(space: DiskSpace, t: DiskThresholds = DEFAULT_DISK_THRESHOLDS): DiskStatus {
  if (below(space, t.critical)) return 'CRITICAL'
  if (below(space, t.warning)) return 'WARNING'
  return 'OK'
}

export function formatSize(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`
}

/** e.g. `12.3 GiB free of 250.0 GiB (5 %)`. */
export function describeSpace(space: DiskSpace): string {
  const pct = space.total > 0 ? Math.floor((space.free / space.total) * 100) : 0
  return `${formatSize(space.free)} free of ${formatSize(space.total)} (${pct} %)`
}

// ---------------------------------------------------------------------------------------------
// Probes

/** The filesystem holding `dir`; undefined when `dir` does not exist here. */
export function spaceAt(dir: string): DiskSpace | undefined {
  try {
    const s = fs.statfsSync(dir)
    return { free: s.bavail * s.bsize, total: s.blocks * s.bsize }
  } catch {
    return undefined
  }
}

/** The device of `dir`, to tell whether two folders share a filesystem. */
export function deviceOf(dir: string): number | undefined {
  try {
    return fs.statSync(dir).dev
  } catch {
    return undefined
  }
}

/** What `docker info` says about where Docker keeps its data. */
export interface DockerDataInfo {
  rootDir: string
  /** Docker Desktop: the data is inside a VM, on its disk image. */
  desktop: boolean
}

export function dockerDataInfo(info: { DockerRootDir?: string; OperatingSystem?: string }): DockerDataInfo {
  return { rootDir: info.DockerRootDir ?? '', desktop: /docker desktop/i.test(info.OperatingSystem ?? '') }
}

/** Where Docker Desktop keeps its VM disk image (macOS, then Docker Desktop for Linux). */
export function desktopDiskImages(home = os.homedir()): string[] {
  return [
    path.join(home, 'Library/Containers/com.docker.docker/Data/vms/0/data/Docker.raw'),
    path.join(home, '.docker/desktop/vms/0/data/Docker.raw'),
  ]
}

/**
 * Free space inside Docker Desktop's VM, from its sparse disk image: the image's apparent size
 * is the VM disk's size, its allocated blocks what the VM has written (deleted files count until
 * the VM trims them, so the estimate errs low); and the image can only grow as far as the
 * host's own free space allows.
 */
export function spaceInDiskImage(image: string): DiskSpace | undefined {
  try {
    const s = fs.statSync(image)
    const used = s.blocks * 512
    const host = spaceAt(path.dirname(image))
    const inside = Math.max(0, s.size - used)
    return { free: host ? Math.min(inside, host.free) : inside, total: s.size }
  } catch {
    return undefined
  }
}

export type DockerDiskResult = { where: string; space: DiskSpace } | { where: string; unknown: string }

/** Free space where Docker keeps its data, or why it cannot be told from here. */
export function dockerDisk(data: DockerDataInfo, home = os.homedir()): DockerDiskResult {
  if (data.desktop) {
    const image = desktopDiskImages(home).find((f) => fs.existsSync(f))
    if (!image)
      return {
        where: 'Docker Desktop’s VM disk',
        unknown: `its disk image (Docker.raw) is not where Docker Desktop keeps it (${desktopDiskImages(home)[0]}): cannot tell how full it is; see Docker Desktop > Settings > Resources`,
      }
    const space = spaceInDiskImage(image)
    if (space) return { where: 'Docker Desktop’s VM disk', space }
    return { where: 'Docker Desktop’s VM disk', unknown: `${image} cannot be read` }
  }
  if (!data.rootDir) return { where: 'Docker’s data', unknown: 'docker info names no DockerRootDir' }
  const space = spaceAt(data.rootDir)
  if (space) return { where: data.rootDir, space }
  return {
    where: data.rootDir,
    unknown: `Docker's data folder ${data.rootDir} is not on this machine (a remote daemon?): cannot tell how full it is`,
  }
}

// ---------------------------------------------------------------------------------------------
// The biggest consumers: `docker system df -v --format '{{json .}}'`

/** `docker system df -v --format '{{json .}}'`, abridged to the fields read here (sizes are text). */
interface DiskUsageJson {
  Images?: { Repository?: string; Tag?: string; ID?: string; Size?: string; Containers?: string }[]
  Volumes?: { Name?: string; Size?: string; Links?: string }[]
  BuildCache?: { Size?: string }[]
}

export interface Consumer {
  kind: 'volume' | 'image' | 'build cache'
  name: string
  bytes: number
}

const DECIMAL: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, PB: 1e15 }
const BINARY: Record<string, number> = { KIB: 1024, MIB: 1024 ** 2, GIB: GiB, TIB: 1024 ** 4 }

/** Docker's human sizes (go-units): `1.23GB`, `512MB`, `0B`, `12.3kB`; `N/A` is undefined. */
export function parseHumanSize(text: string | undefined): number | undefined {
  const m = /^([\d.]+)\s*([a-z]*)$/i.exec((text ?? '').trim())
  if (!m) return undefined
  const unit = m[2]!.toUpperCase() || 'B'
  const mult = DECIMAL[unit] ?? BINARY[unit]
  return mult === undefined ? undefined : Number(m[1]) * mult
}

/** The `n` largest volumes, images and the build cache, largest first. */
export function biggestConsumers(stdout: string, n = 5): Consumer[] {
  let du: DiskUsageJson
  try {
    du = JSON.parse(stdout.trim().split('\n')[0] ?? '') as DiskUsageJson
  } catch {
    return []
  }
  const all: Consumer[] = []
  for (const v of du.Volumes ?? [])
    all.push({ kind: 'volume', name: v.Name ?? '?', bytes: parseHumanSize(v.Size) ?? 0 })
  for (const i of du.Images ?? []) {
    const name = i.Repository && i.Repository !== '<none>' ? `${i.Repository}:${i.Tag}` : (i.ID ?? '?')
    all.push({ kind: 'image', name, bytes: parseHumanSize(i.Size) ?? 0 })
  }
  const cache = (du.BuildCache ?? []).reduce((sum, c) => sum + (parseHumanSize(c.Size) ?? 0), 0)
  if (cache > 0) all.push({ kind: 'build cache', name: 'build cache', bytes: cache })
  return all
    .filter((c) => c.bytes > 0)
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, n)
}
