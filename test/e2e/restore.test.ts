// scripts/restore.mts as a black box: backup -> drop -> restore round trip against a real
// PostgreSQL (through the fake docker's `exec -T db pg_*`), the guards that refuse to restore,
// and the order of the compose calls.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PG_DUMP_FILE } from '../../lib/ops/backup.mts'
import {
  assertNoSecrets,
  healthServer,
  makeProject,
  type Project,
  runScript,
  serviceStates,
} from '../helpers/backup-env.ts'
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts'

let pg: TestPostgres
let current: Project | undefined
let health: Awaited<ReturnType<typeof healthServer>>

const SERVICES = ['db', 'redis7', 'clickhouse', 'web', 'proxy', 'worker', 'plugins', 'ingestion-general']

beforeAll(async () => {
  pg = startPostgres()
  // /_health answers like Caddy in front of web: 502 while web is down, 200 ok when it runs.
  health = await healthServer(() =>
    current && serviceStates(current).web?.state === 'running'
      ? { status: 200, body: 'ok' }
      : { status: 502, body: '' },
  )
})
afterAll(async () => {
  pg?.stop()
  await health?.close()
})

function project(): Project {
  const p = makeProject({ POSTHOG_PROXY_HTTP_PORT: String(health.port), HEALTH_TIMEOUT: '20s' })
  p.writeScenario({
    services: Object.fromEntries(SERVICES.map((s) => [s, { state: 'running' }])),
    pgForward: { host: pg.host, port: pg.port, binDir: pg.binDir },
  })
  current = p
  return p
}

const SNAPSHOT_SQL = `SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM (
  SELECT 'p' || row(p.*)::text AS x FROM person p
  UNION ALL SELECT 'e' || row(e.*)::text FROM event e) rows`

function fill(): void {
  pg.psql(`DROP TABLE IF EXISTS event; DROP TABLE IF EXISTS person;
    CREATE TABLE person (id serial PRIMARY KEY, email text UNIQUE NOT NULL, props jsonb, created timestamptz DEFAULT now());
    CREATE TABLE event (id bigserial PRIMARY KEY, person_id int REFERENCES person(id), name text, payload bytea, at timestamptz);
    INSERT INTO person (email, props) SELECT 'user' || g || '@example.com', jsonb_build_object('n', g, 'name', 'Zoë ' || g) FROM generate_series(1, 300) g;
    INSERT INTO event (person_id, name, payload, at)
      SELECT 1 + g % 300, CASE WHEN g % 3 = 0 THEN '$pageview' ELSE 'signup ''quoted''' END, decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute'
      FROM generate_series(1, 5000) g;`)
}

function newestBackup(p: Project): string {
  const names = fs.readdirSync(p.backupDir).sort()
  return path.join(p.backupDir, names.at(-1)!)
}

describe('restore', () => {
  it('round trip: every row comes back, services stopped first and started in order', async () => {
    const p = project()
    fill()
    const before = pg.psql(SNAPSHOT_SQL)
    expect(Number(pg.psql('SELECT count(*) FROM event'))).toBe(5000)
    const backup = await runScript(p, 'scripts/backup.mts', [])
    expect(backup.code).toBe(0)

    pg.psql(
      "DROP TABLE event; UPDATE person SET email = 'changed-' || id || '@example.com' WHERE id < 50; DELETE FROM person WHERE id > 200",
    )
    expect(pg.psql("SELECT to_regclass('event') IS NULL")).toMatch(/^t/)
    fs.writeFileSync(p.logFile, '')

    const res = await runScript(p, 'scripts/restore.mts', ['--yes'])
    assertNoSecrets(res)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/manifest verified/)
    expect(res.stdout).toMatch(/PostHog is healthy/)
    expect(pg.psql(SNAPSHOT_SQL)).toBe(before)
    expect(Number(pg.psql('SELECT count(*) FROM event'))).toBe(5000)

    const calls = p.calls().filter((c) => !/compose (ps|config)|inspect/.test(c))
    const stop = calls.findIndex((c) => c.startsWith('compose stop'))
    const restore = calls.findIndex((c) => c.includes('pg_restore'))
    const web = calls.indexOf('compose up -d --no-deps web proxy')
    const all = calls.indexOf('compose up -d --no-build')
    expect(calls[stop]!.split(' ').slice(2).sort()).toEqual(SERVICES.filter((s) => s !== 'db').sort())
    expect(stop).toBeGreaterThanOrEqual(0)
    expect(stop).toBeLessThan(restore)
    expect(restore).toBeLessThan(web)
    expect(web).toBeLessThan(all)
    expect(calls[restore]).toBe(
      'compose exec -T db pg_restore -U posthog -d posthog --clean --if-exists --no-owner --exit-on-error',
    )
  })

  it('without a terminal and without --yes it refuses (exit 2) and changes nothing', async () => {
    const p = project()
    fill()
    expect((await runScript(p, 'scripts/backup.mts', [])).code).toBe(0)
    fs.writeFileSync(p.logFile, '')
    const res = await runScript(p, 'scripts/restore.mts', [])
    assertNoSecrets(res)
    expect(res.code).toBe(2)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/pass --yes/)
    expect(p.calls()).toEqual([])
  })

  it('a bad --timeout is refused (exit 2, one line) before anything is stopped or restored', async () => {
    const p = project()
    fill()
    expect((await runScript(p, 'scripts/backup.mts', [])).code).toBe(0)
    fs.writeFileSync(p.logFile, '')
    const res = await runScript(p, 'scripts/restore.mts', ['--yes', '--timeout', 'soon'])
    assertNoSecrets(res)
    expect(res.code).toBe(2)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/--timeout/)
    expect(p.calls()).toEqual([])
  })

  it('refuses a backup taken with other secrets unless told to accept them', async () => {
    const p = project()
    fill()
    expect((await runScript(p, 'scripts/backup.mts', [])).code).toBe(0)
    const other = fs
      .readFileSync(p.envFile, 'utf8')
      .replace(/^ENCRYPTION_SALT_KEYS=.*$/m, `ENCRYPTION_SALT_KEYS=${'Z'.repeat(32)}`)
    fs.writeFileSync(p.envFile, other)
    fs.writeFileSync(p.logFile, '')
    const refused = await runScript(p, 'scripts/restore.mts', ['--yes'])
    assertNoSecrets(refused)
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/different ENCRYPTION_SALT_KEYS.*--accept-different-secrets/)
    expect(refused.stderr).not.toContain('Z'.repeat(32))
    expect(p.calls()).toEqual([])
    const accepted = await runScript(p, 'scripts/restore.mts', ['--yes', '--accept-different-secrets'])
    expect(accepted.code).toBe(0)
  })

  it('refuses a damaged backup (exit 1) before touching anything', async () => {
    const p = project()
    fill()
    expect((await runScript(p, 'scripts/backup.mts', [])).code).toBe(0)
    const dump = path.join(newestBackup(p), PG_DUMP_FILE)
    const bytes = fs.readFileSync(dump)
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1)
    fs.writeFileSync(dump, bytes)
    fs.writeFileSync(p.logFile, '')
    const res = await runScript(p, 'scripts/restore.mts', ['--yes', '--from', path.basename(newestBackup(p))])
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/is damaged: postgres.dump does not match its SHA-256/)
    expect(p.calls()).toEqual([])
  })
})
