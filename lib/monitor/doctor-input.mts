// What `doctor` reads, from its flags: how far back and how many log lines, when the disk counts
// as low, and which log files besides the containers' (frpc's where frpc-setup puts it, and the
// ones named with --log-file).
import fs from 'node:fs'
import path from 'node:path'
import { UsageError, warn } from '../core/cli.mts'
import type { DiskThresholds } from '../core/disk.mts'
import { diskThresholds } from './disk-check.mts'

/** doctor's flags that say what to read (as its spec types them). */
export interface DoctorFlags {
  since: string
  tail: string
  'disk-warning': string
  'disk-critical': string
}

export interface DoctorReading {
  since: string
  tail: number
  diskThresholds: DiskThresholds
}

const SINCE = /^(\d+(s|m|h)|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?)$/

/** The checked flags; bad input throws a UsageError. */
export function doctorReading(flags: DoctorFlags): DoctorReading {
  const tail = Number(flags.tail)
  if (!Number.isInteger(tail) || tail < 1)
    throw new UsageError(`--tail=${flags.tail} must be a whole number above 0`)
  if (!SINCE.test(flags.since))
    throw new UsageError(`--since=${flags.since} must be a duration such as 30m or 2h, or an RFC 3339 time`)
  return { since: flags.since, tail, diskThresholds: diskThresholds(flags) }
}

/** Why `file` cannot be read, or undefined when it can. */
export function unreadable(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK)
    return fs.statSync(file).isFile() ? undefined : 'not a file'
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error'
  }
}

/** frpc's log where scripts/frpc-setup.mts puts it (FRP_LOG_DIR), when there is one. */
export function defaultLogFiles(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string[] {
  const dir = env.FRP_LOG_DIR || (platform === 'darwin' ? '/usr/local/var/log/frp' : '/var/log/frp')
  const frpc = path.join(dir, 'frpc.log')
  if (!fs.existsSync(frpc)) return []
  const why = unreadable(frpc)
  if (why) warn(`frpc's log ${frpc} cannot be read (${why}): not scanned; run doctor with sudo to include it`)
  return why ? [] : [frpc]
}

/** A log the user named must be readable: a mistyped path would otherwise scan nothing and report all clear. */
export function namedLogFiles(files: string[]): string[] {
  for (const file of files) {
    const why = unreadable(file)
    if (why)
      throw new UsageError(
        `--log-file ${file} cannot be read (${why}): check the path, or run doctor with sudo for a root-only log`,
      )
  }
  return files
}

/** The log files to scan: those named (each must be readable), then frpc's when it is there. */
export function logFilesToScan(named: string[]): string[] {
  return [...new Set([...namedLogFiles(named), ...defaultLogFiles()])]
}
