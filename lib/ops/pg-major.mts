// A PostgreSQL major upgrade the documented way: the new server cannot read the old data
// directory, so the data goes through a dump. With the backup taken (every database on the
// server), the old volume's content is copied aside and the volume removed, the new db starts
// on a fresh volume, and the dumps are restored into it. Nothing is deleted that is not also
// somewhere else: the old data stays in the aside volume, and a rollback puts it back.
// Docker has no `volume rename`: a move is create + copy (verified) + remove, each step
// journalled by the caller, so a kill at any point resumes or rolls back cleanly.
import path from 'node:path'
import YAML from 'yaml'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { compose, docker, PROJECT_NAME } from '../core/docker.mts'
import { lastLine } from '../core/exec.mts'
import { timestamp } from '../core/fs.mts'
import { BACKUP_NAME, EXTRA_DUMP, PG_DUMP_FILE, readManifest } from './backup.mts'
import { POSTHOG_DB, restorePostgres, waitForDb } from './postgres.mts'
import type { PostgresMajorState } from './upgrade-journal.mts'

/** Where the postgres image keeps its data directory. */
const PGDATA = '/var/lib/postgresql/data'

type VolumeEntry = string | { type?: string; source?: string; target?: string }

/**
 * The Docker volume holding the db service's data directory, e.g. `posthog_postgres-data`, or
 * undefined when it is a bind mount or not declared (then there is no volume to move).
 */
export function dbVolume(composeText: string, project = PROJECT_NAME): string | undefined {
  const doc = YAML.parse(composeText, { merge: true, logLevel: 'silent' }) as {
    services?: Record<string, { volumes?: VolumeEntry[] }>
    volumes?: Record<string, { name?: string } | null>
  }
  for (const v of doc?.services?.db?.volumes ?? []) {
    const [source, target] =
      typeof v === 'string' ? v.split(':') : [v?.type === 'bind' ? undefined : v?.source, v?.target]
    if (!source || (target !== PGDATA && target !== path.dirname(PGDATA))) continue
    if (/^[./~]/.test(source)) return undefined // a bind mount
    return doc.volumes?.[source]?.name ?? `${project}_${source}`
  }
  return undefined
}

/** `posthog_postgres-data-pg15-20261202T131755Z`: the old major's data, kept. */
export function asideVolumeName(volume: string, major: string, date = new Date()): string {
  return `${volume}-pg${major}-${timestamp(date).replace(/[^0-9TZ]/g, '')}`
}

/** Labels of a kept volume: ours, never Compose's (so `down --volumes` leaves it alone). */
function asideLabels(of: string, major: string): string[] {
  return ['dev.posthog-homelab.aside-of', of, 'dev.posthog-homelab.postgres-major', major]
}

/** Labels Compose puts on the project's volumes: a volume put back under its name is Compose's again. */
function composeLabels(volume: string, project = PROJECT_NAME): string[] {
  return [
    'com.docker.compose.project',
    project,
    'com.docker.compose.volume',
    volume.replace(`${project}_`, ''),
  ]
}

/** Copies /from into /to in a throwaway container and fails unless both hold as many entries. */
export const COPY_SCRIPT =
  'set -e; cp -a /from/. /to/; a=$(cd /from && find . | wc -l); b=$(cd /to && find . | wc -l); ' +
  '[ "$a" = "$b" ] || { echo "copied $b of $a entries" >&2; exit 1; }; echo "copied $a entries"'

export function copyVolumeArgs(from: string, to: string, image: string): string[] {
  return [
    ...['run', '--rm', '--network', 'none', '--entrypoint', 'sh'],
    ...['-v', `${from}:/from:ro`, '-v', `${to}:/to`, image, '-c', COPY_SCRIPT],
  ]
}

// ---------------------------------------------------------------------------------------------
// Thin I/O

async function dockerOrFail(args: string[], what: string, timeout: `${number}m` | `${number}s` = '60s') {
  const r = await docker(args, { timeout, nothrow: true })
  if (!r.ok) throw new RuntimeFailure(`${what} failed: ${lastLine(r) || `exit ${r.exitCode}`}`)
  return r
}

export async function volumeExists(name: string): Promise<boolean> {
  return (await docker(['volume', 'inspect', name], { timeout: '30s', nothrow: true })).ok
}

async function createVolume(name: string, labels: string[]): Promise<void> {
  const args = ['volume', 'create']
  for (let i = 0; i < labels.length; i += 2) args.push('--label', `${labels[i]}=${labels[i + 1]}`)
  await dockerOrFail([...args, name], `docker volume create ${name}`)
}

async function removeVolume(name: string): Promise<void> {
  if (await volumeExists(name)) await dockerOrFail(['volume', 'rm', name], `docker volume rm ${name}`)
}

/** A fresh copy of `from` in `to` (a leftover partial `to` is replaced first). */
async function copyVolume(from: string, to: string, image: string, labels: string[]): Promise<void> {
  if (!(await volumeExists(from))) throw new RuntimeFailure(`volume ${from} does not exist`)
  await removeVolume(to)
  await createVolume(to, labels)
  await dockerOrFail(copyVolumeArgs(from, to, image), `copying volume ${from} to ${to}`, '240m')
}

/** Stops every service and removes the db container, so nothing writes and its volume is free. */
async function freeTheVolume(stackDir: string): Promise<void> {
  const stop = await compose(stackDir, ['stop'], { timeout: '10m', nothrow: true })
  if (!stop.ok) throw new RuntimeFailure(`docker compose stop failed: ${lastLine(stop)}`)
  const rm = await compose(stackDir, ['rm', '--force', '--stop', 'db'], { timeout: '5m', nothrow: true })
  if (!rm.ok) throw new RuntimeFailure(`docker compose rm db failed: ${lastLine(rm)}`)
}

async function createDatabase(stackDir: string, name: string): Promise<void> {
  if (!/^[A-Za-z_][\w-]*$/.test(name)) throw new UsageError(`'${name}' is not a database name`)
  const r = await compose(stackDir, ['exec', '-T', 'db', 'createdb', '-U', 'posthog', name], {
    timeout: '60s',
    nothrow: true,
  })
  if (!r.ok && !/already exists/.test(r.stderr))
    throw new RuntimeFailure(`createdb ${name} failed: ${lastLine(r) || `exit ${r.exitCode}`}`)
}

// ---------------------------------------------------------------------------------------------
// The move, and its undoing. `save` journals the state after every step that changed something.

export interface MoveOptions {
  stackDir: string
  backupDir: string
  state: PostgresMajorState
  save: (state: PostgresMajorState) => void
  log: (line: string) => void
}

/**
 * planned -> copied -> moved -> restored, resuming from `state`: the old volume is copied aside
 * (verified), then removed; the new db starts on a fresh volume and every dump of the backup is
 * restored into it.
 */
export async function moveIntoNewMajor(o: MoveOptions): Promise<PostgresMajorState> {
  let s = o.state
  const step = (next: PostgresMajorState['state']) => {
    s = { ...s, state: next }
    o.save(s)
  }
  o.log(`PostgreSQL ${s.from} -> ${s.to}: stopping everything so nothing writes to the database`)
  await freeTheVolume(o.stackDir)
  if (s.state === 'planned') {
    o.log(`keeping the PostgreSQL ${s.from} data: copying volume ${s.volume} to ${s.aside}`)
    await copyVolume(s.volume, s.aside, s.image, asideLabels(s.volume, s.from))
    step('copied')
  }
  if (s.state === 'copied') {
    await removeVolume(s.volume)
    step('moved')
  }
  if (s.state === 'moved') {
    // A fresh volume from an attempt cut short holds only what was restored from the backup.
    await removeVolume(s.volume)
    o.log(`starting PostgreSQL ${s.to} on a new volume ${s.volume}`)
    const up = await compose(o.stackDir, ['up', '-d', '--no-deps', 'db'], { timeout: '30m', nothrow: true })
    if (!up.ok) throw new RuntimeFailure(`starting the new db failed: ${lastLine(up)}`)
    await waitForDb(o.stackDir, { timeoutMs: 300_000, tcp: true })
    await restoreEveryDatabase(o.stackDir, o.backupDir, o.log)
    step('restored')
  }
  return s
}

async function restoreEveryDatabase(stackDir: string, backupDir: string, log: (line: string) => void) {
  if (!BACKUP_NAME.test(path.basename(backupDir)))
    throw new RuntimeFailure(`${backupDir} is not a backup folder`)
  const manifest = readManifest(backupDir)
  if (!manifest) throw new RuntimeFailure(`${backupDir} has no valid manifest`)
  log(`restoring ${POSTHOG_DB} into PostgreSQL from ${path.join(backupDir, PG_DUMP_FILE)}`)
  await restorePostgres(stackDir, path.join(backupDir, PG_DUMP_FILE))
  for (const db of manifest.extraDatabases ?? []) {
    log(`restoring database ${db}`)
    await createDatabase(stackDir, db)
    await restorePostgres(stackDir, path.join(backupDir, EXTRA_DUMP(db)), '120m', db)
  }
}

/**
 * Puts the old major's data back under the volume's name for the previous version: the new
 * major's data is moved aside (kept), then the aside copy is copied back. Nothing to do when the
 * old volume was never removed.
 */
export async function undoMove(o: MoveOptions): Promise<PostgresMajorState> {
  let s = o.state
  if (s.state === 'planned' || s.state === 'copied') return s
  const save = (change: Partial<PostgresMajorState>) => {
    s = { ...s, ...change }
    o.save(s)
  }
  // Named once: a rollback cut short and run again copies into the same volume, not a second one.
  if (!s.newAside) save({ newAside: asideVolumeName(s.volume, s.to) })
  const newAside = s.newAside!
  await freeTheVolume(o.stackDir)
  if (!s.rollback) {
    if (await volumeExists(s.volume)) {
      o.log(`keeping the PostgreSQL ${s.to} data of the failed upgrade: copying ${s.volume} to ${newAside}`)
      await copyVolume(s.volume, newAside, s.image, asideLabels(s.volume, s.to))
      await removeVolume(s.volume)
    }
    save({ rollback: 'new-aside' })
  }
  if (s.rollback === 'new-aside') {
    o.log(`putting the PostgreSQL ${s.from} data back: copying ${s.aside} to ${s.volume}`)
    await copyVolume(s.aside, s.volume, s.image, composeLabels(s.volume))
    save({ rollback: 'old-back' })
  }
  return s
}
