// scripts/backup.mts as a black box: a real PostgreSQL behind the fake docker's
// `compose exec -T db pg_dump`, the folder layout, modes, manifest, retention and failures.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MANIFEST, PG_DUMP_FILE, readManifest, verifyBackup } from '../../lib/backup.mts'
import { assertNoSecrets, makeProject, type Project, runScript } from '../helpers/backup-env.ts'
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts'

let pg: TestPostgres

beforeAll(() => {
  pg = startPostgres()
  pg.psql(
    'CREATE TABLE t (id int primary key, note text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g',
  )
})
afterAll(() => pg?.stop())

function project(env: Record<string, string> = {}): Project {
  const p = makeProject(env)
  p.writeScenario({
    services: { db: { state: 'running', health: 'healthy' }, web: { state: 'running' } },
    pgForward: { host: pg.host, port: pg.port, binDir: pg.binDir },
  })
  return p
}

function backups(p: Project): string[] {
  return fs.existsSync(p.backupDir) ? fs.readdirSync(p.backupDir).sort() : []
}

describe('backup', () => {
  it('writes .env and a custom-format dump with a manifest, modes 0700/0600', async () => {
    const p = project()
    const res = await runScript(p, 'scripts/backup.mts', [])
    assertNoSecrets(res)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    const [name] = backups(p)
    expect(name).toMatch(/^\d{8}T\d{6}Z$/)
    const dir = path.join(p.backupDir, name!)
    expect(res.stdout).toContain(`backup written: ${dir}`)
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700)
    expect(fs.statSync(path.join(dir, '.env')).mode & 0o777).toBe(0o600)
    expect(fs.readFileSync(path.join(dir, '.env'))).toEqual(fs.readFileSync(p.envFile))
    expect(fs.readFileSync(path.join(dir, PG_DUMP_FILE)).subarray(0, 5).toString()).toBe('PGDMP')
    const manifest = readManifest(dir)!
    expect(manifest.posthogTag).toBe('v1')
    expect(manifest.files.map((f) => f.name).sort()).toEqual(['.env', PG_DUMP_FILE])
    expect(await verifyBackup(dir)).toEqual([])
    expect(p.calls()).toContain('compose exec -T db pg_dump -U posthog -Fc posthog')
  })

  it('keeps exactly the newest BACKUP_KEEP backups and leaves foreign folders alone', async () => {
    const p = project({ BACKUP_KEEP: '2' })
    fs.mkdirSync(path.join(p.backupDir, 'keep-me'), { recursive: true })
    const made: string[] = []
    for (let i = 0; i < 3; i++) {
      const res = await runScript(p, 'scripts/backup.mts', [])
      expect(res.code).toBe(0)
      made.push(...backups(p).filter((b) => !made.includes(b) && b !== 'keep-me'))
      if (i < 2) await new Promise((r) => setTimeout(r, 1100)) // folder names have 1 s resolution
    }
    expect(backups(p)).toEqual([...made.slice(-2), 'keep-me'].sort())
  })

  it('an empty dump is an error and leaves no folder behind', async () => {
    const p = project()
    p.writeScenario({ ...p.scenario, rules: [{ match: 'exec -T db pg_dump', stdout: '', exitCode: 0 }] })
    const res = await runScript(p, 'scripts/backup.mts', [])
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/^backup: error: pg_dump wrote nothing/)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(backups(p)).toEqual([])
  })

  it('a failing dump is an error with its reason and leaves no folder behind', async () => {
    const p = project()
    p.writeScenario({
      ...p.scenario,
      rules: [
        {
          match: 'exec -T db pg_dump',
          stdout: 'PGDMP partial',
          stderr: 'pg_dump: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed',
          exitCode: 1,
        },
      ],
    })
    const res = await runScript(p, 'scripts/backup.mts', [])
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/pg_dump failed \(exit 1\): pg_dump: error: connection to server/)
    expect(backups(p)).toEqual([])
    expect(fs.existsSync(path.join(p.backupDir, MANIFEST))).toBe(false)
  })
})
