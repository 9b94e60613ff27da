// PostgreSQL in the stack's `db` container: pg_dump into a file and pg_restore from one (the
// file is streamed through a file descriptor, so a large database never sits in this process's
// memory), the databases on the server, and the wait until it accepts connections.
import fs from 'node:fs'
import { sleep } from 'zx'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { compose, composePrefix, dockerBin } from '../core/docker.mts'
import { type CommandResult, type Duration, lastLine, run } from '../core/exec.mts'
import { formatElapsed } from '../core/health.mts'

/** PostHog's own database; a PostgreSQL major upgrade also carries the others on the server (Temporal's). */
export const POSTHOG_DB = 'posthog'
const DB_NAME = /^[A-Za-z_][\w-]*$/

function dbName(database: string): string {
  if (!DB_NAME.test(database))
    throw new UsageError(`'${database}' is not a database name this toolkit handles`)
  return database
}

export function pgDumpArgs(stackDir: string, database = POSTHOG_DB): string[] {
  return [
    ...composePrefix(stackDir),
    ...['exec', '-T', 'db', 'pg_dump', '-U', 'posthog', '-Fc', dbName(database)],
  ]
}

export function pgRestoreArgs(stackDir: string, database = POSTHOG_DB): string[] {
  return [
    ...composePrefix(stackDir),
    ...['exec', '-T', 'db', 'pg_restore', '-U', 'posthog', '-d', dbName(database), '--clean', '--if-exists'],
    ...['--no-owner', '--exit-on-error'],
  ]
}

const OTHER_DATABASES_SQL =
  "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname NOT IN ('postgres', 'posthog') ORDER BY 1"

/** The databases on the db server besides `posthog` and `postgres` (Temporal keeps two there). */
export async function otherDatabases(stackDir: string): Promise<string[]> {
  const args = [
    ...composePrefix(stackDir),
    ...['exec', '-T', 'db', 'psql', '-U', 'posthog', '-d', POSTHOG_DB, '-At', '-c', OTHER_DATABASES_SQL],
  ]
  const res = await run(dockerBin(), args, { nothrow: true, timeout: '60s' })
  if (!res.ok)
    throw new RuntimeFailure(
      `listing the databases failed (exit ${res.exitCode ?? res.signal}): ${stderrLine(res)}`,
      "check that the stack's db service is running ('docker compose ps db')",
    )
  const names = res.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const odd = names.find((n) => !DB_NAME.test(n))
  if (odd)
    throw new RuntimeFailure(
      `the db server holds a database named '${odd}', which this toolkit cannot back up`,
    )
  return names
}

/** What a failed command said: its last line on stderr (stdout may hold data), or `no message`. */
export function stderrLine(res: Pick<CommandResult, 'stderr'>): string {
  return lastLine({ stdout: '', stderr: res.stderr }) || 'no message'
}

/** Streams `pg_dump -Fc` from the db container into `file` (mode 0600). Empty output is an error. */
export async function dumpPostgres(
  stackDir: string,
  file: string,
  timeout: Duration = '120m',
  database = POSTHOG_DB,
): Promise<number> {
  const fd = fs.openSync(file, 'w', 0o600)
  let res: CommandResult
  try {
    res = await run(dockerBin(), pgDumpArgs(stackDir, database), { nothrow: true, timeout, stdout: fd })
  } finally {
    fs.closeSync(fd)
  }
  if (!res.ok)
    throw new RuntimeFailure(
      `pg_dump failed (exit ${res.exitCode ?? res.signal}): ${stderrLine(res)}`,
      "check that the stack's db service is running ('docker compose ps db')",
    )
  const size = fs.statSync(file).size
  if (size === 0)
    throw new RuntimeFailure('pg_dump wrote nothing (an empty dump)', "check the db service's logs")
  return size
}

/** Feeds a custom-format dump to `pg_restore --clean --if-exists` in the db container. */
export async function restorePostgres(
  stackDir: string,
  file: string,
  timeout: Duration = '120m',
  database = POSTHOG_DB,
): Promise<void> {
  const fd = fs.openSync(file, 'r')
  try {
    const res = await run(dockerBin(), pgRestoreArgs(stackDir, database), {
      nothrow: true,
      timeout,
      stdin: fd,
    })
    if (!res.ok)
      throw new RuntimeFailure(
        `pg_restore failed (exit ${res.exitCode ?? res.signal}): ${stderrLine(res)}`,
        'the database may be partly restored: fix the cause and run restore again',
      )
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Until the db service accepts connections. `tcp`: on TCP, for a server on a new volume, which
 * listens on its socket alone while its first-start initdb runs and then restarts.
 */
export async function waitForDb(
  stackDir: string,
  opts: { timeoutMs?: number; tcp?: boolean } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 120_000
  const started = Date.now()
  const args = ['exec', '-T', 'db', 'pg_isready', '-U', 'posthog', ...(opts.tcp ? ['-h', '127.0.0.1'] : [])]
  for (;;) {
    const out = await compose(stackDir, args, { timeout: '20s', nothrow: true })
    if (out.ok) return
    if (Date.now() - started > timeoutMs)
      throw new RuntimeFailure(
        `the db service did not accept connections within ${formatElapsed(timeoutMs)}`,
        "look at 'docker compose logs db'",
      )
    await sleep('1s')
  }
}
