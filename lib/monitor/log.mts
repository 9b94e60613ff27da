// The log a scheduled check appends to: moved aside past a size cap, one old generation kept.
// `--rotate-log` and `--log-max-mb` mean the same in health, watch and schedule.
// Bundled into the health and watch checks (plain node 18+): node: modules only, no zx, no yaml.
import fs from 'node:fs'
import { type FlagSpec, UsageError } from '../core/cli.mts'

export const ROTATE_LOG_FLAG = {
  type: 'string',
  path: true,
  help: 'move this log file to FILE.1 when it is larger than --log-max-mb',
} as const satisfies FlagSpec

export const LOG_MAX_MB_FLAG = {
  type: 'string',
  default: '5',
  help: 'size cap for --rotate-log',
} as const satisfies FlagSpec

/** `--log-max-mb` in bytes; bad input unless it is a number above 0. */
export function logMaxBytes(raw: string): number {
  const mb = Number(raw)
  if (!(mb > 0)) throw new UsageError(`--log-max-mb=${raw} must be a number above 0`)
  return mb * 1024 * 1024
}

/** Moves `file` to `file.1` when it is larger than `maxBytes` (one old generation is kept). */
export function rotateLog(file: string, maxBytes: number): boolean {
  try {
    if (fs.statSync(file).size <= maxBytes) return false
    fs.renameSync(file, `${file}.1`)
    return true
  } catch {
    return false
  }
}
