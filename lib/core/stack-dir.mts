// STACK_DIR, the folder the toolkit writes the stack into: where it may be (never over something
// of the user's) and the marker that says a folder is the toolkit's.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { UsageError } from './cli.mts'

/** STACK_DIR as an absolute path: relative to the project root, a leading `~` meaning the home folder. */
export function resolveStackDir(root: string, value: string): string {
  const expanded = /^~(\/|$)/.test(value) ? path.join(os.homedir(), value.slice(1)) : value
  return path.resolve(root, expanded)
}

/** What the toolkit writes into STACK_DIR: a folder holding only these (or the marker) is ours. */
export const STACK_MARKER = '.posthog-homelab'
const STACK_ENTRIES = new Set([
  STACK_MARKER,
  'posthog',
  'compose',
  'share',
  'clickhouse',
  '.env',
  '.env.services',
  '.lock',
  'docker-compose.yml',
  'docker-compose.base.yml',
  'docker-compose.override.yml',
  'docker-compose.local.yml',
  'secrets.sha256.json',
  'health-state.json',
  'upgrades.log',
])

function describeStackDir(value: string, stackDir: string): string {
  return value === stackDir ? `STACK_DIR=${value}` : `STACK_DIR=${value} (${stackDir})`
}

/**
 * Refuses (UsageError) a STACK_DIR the toolkit must not write into: `/`, the project folder or one
 * that contains it, the folder holding the env file, a file, or a non-empty folder the toolkit did
 * not create. prepare writes the generated .env and compose files there, so any of these would
 * overwrite something of the user's.
 */
export function checkStackDir(root: string, envFile: string, value: string): void {
  const stackDir = resolveStackDir(root, value)
  const name = describeStackDir(value, stackDir)
  const inside = (child: string) => {
    const rel = path.relative(stackDir, child)
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
  }
  const fix = 'set STACK_DIR in .env to a folder of its own, such as stack'
  if (stackDir === path.parse(stackDir).root) throw new UsageError(`${name} is the root folder: ${fix}`)
  if (inside(path.resolve(root)))
    throw new UsageError(
      `${name} is or contains the project folder, whose files prepare would overwrite: ${fix}`,
    )
  if (inside(envFile))
    throw new UsageError(`${name} holds the env file ${envFile}, which prepare would overwrite: ${fix}`)
  let entries: string[]
  try {
    entries = fs.readdirSync(stackDir)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return
    if (code === 'ENOTDIR') throw new UsageError(`${name} is a file, not a folder: ${fix}`)
    throw new UsageError(`${name} cannot be read (${code}): ${fix}, or fix its permissions`)
  }
  const foreign = entries.filter((e) => !STACK_ENTRIES.has(e) && !/^(\.?posthog|\.upgrade|backups?)/.test(e))
  if (foreign.length > 0 && !entries.includes(STACK_MARKER))
    throw new UsageError(
      `${name} already holds files the toolkit did not write (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', ...' : ''}): ${fix}, or empty it`,
    )
}
