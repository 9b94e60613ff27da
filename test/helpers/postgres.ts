// A throwaway PostgreSQL server from Debian's `postgresql` package for tests: initdb into a temp
// dir, listening only on a unix socket in that dir (no TCP port to collide on), superuser
// `posthog` with trust auth, database `posthog`. As root it runs as the `postgres` user.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { scratchDir } from './common.ts'

export interface TestPostgres {
  /** Socket directory: use as PGHOST. */
  host: string
  port: number
  binDir: string
  dir: string
  psql(sql: string): string
  stop(): void
}

export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql'
  const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions)
    if (fs.existsSync(path.join(base, v, 'bin', 'initdb'))) return path.join(base, v, 'bin')
  throw new Error('PostgreSQL is not installed: apt-get install postgresql')
}

export function startPostgres(): TestPostgres {
  const binDir = postgresBinDir()
  const dir = scratchDir('pg-test-')
  fs.chmodSync(dir, 0o755)
  const asRoot = process.getuid?.() === 0
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir], { timeout: 10_000 })
  const run = (bin: string, args: string[]) =>
    execFileSync(
      asRoot ? 'runuser' : path.join(binDir, bin),
      asRoot ? ['-u', 'postgres', '--', path.join(binDir, bin), ...args] : args,
      {
        timeout: 60_000,
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: dir,
      },
    )
  const data = path.join(dir, 'data')
  run('initdb', ['-D', data, '-U', 'posthog', '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C'])
  const port = 5432 // only a socket file name: the server listens on no TCP address
  run('pg_ctl', [
    '-D',
    data,
    '-l',
    path.join(dir, 'server.log'),
    '-w',
    '-t',
    '30',
    '-o',
    `-k ${dir} -p ${port} -c listen_addresses='' -c fsync=off`,
    'start',
  ])
  const psql = (sql: string) =>
    execFileSync(
      path.join(binDir, 'psql'),
      [
        '-h',
        dir,
        '-p',
        String(port),
        '-U',
        'posthog',
        '-d',
        'posthog',
        '-v',
        'ON_ERROR_STOP=1',
        '-At',
        '-c',
        sql,
      ],
      {
        timeout: 30_000,
        encoding: 'utf8',
        env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
  execFileSync(path.join(binDir, 'createdb'), ['-h', dir, '-p', String(port), '-U', 'posthog', 'posthog'], {
    timeout: 30_000,
  })
  return {
    host: dir,
    port,
    binDir,
    dir,
    psql,
    stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop'])
      } catch {}
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
