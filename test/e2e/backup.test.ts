// scripts/backup.mts as a black box: a real PostgreSQL behind the fake docker's
// `compose exec -T db pg_dump`, the folder layout, modes, manifest, retention, failures, and
// runs killed (SIGKILL) at several points, whose leftovers the next run removes.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../lib/core/env.mts'
import {
  buildManifest,
  describeFiles,
  listBackups,
  MANIFEST,
  PG_DUMP_FILE,
  readManifest,
  verifyBackup,
} from '../../lib/ops/backup.mts'
import {
  assertNoSecrets,
  makeProject,
  type Project,
  type RunResult,
  runScript,
} from '../helpers/backup-env.ts'
import { whileRunning } from '../helpers/common.ts'
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
    const cfg = loadConfig({ envFile: p.envFile, env: {} })
    for (const day of ['01', '02', '03']) {
      const dir = path.join(p.backupDir, `202001${day}T000000Z`)
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, PG_DUMP_FILE), `old dump ${day}`)
      const m = buildManifest({
        cfg,
        files: await describeFiles(dir),
        createdAt: new Date(`2020-01-${day}T00:00:00Z`),
      })
      fs.writeFileSync(path.join(dir, MANIFEST), JSON.stringify(m))
    }
    fs.mkdirSync(path.join(p.backupDir, 'keep-me'))
    fs.mkdirSync(path.join(p.backupDir, '20190101T000000Z')) // our naming, but no manifest: not ours to delete
    const res = await runScript(p, 'scripts/backup.mts', [])
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/removed old backups \(keeping 2\): 20200101T000000Z, 20200102T000000Z/)
    const fresh = backups(p).find((b) => /^\d{8}T/.test(b) && b > '2021')!
    expect(backups(p)).toEqual(['20190101T000000Z', '20200103T000000Z', fresh, 'keep-me'].sort())
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
  it('--clickhouse runs the native BACKUP into the mounted folder and records it; its failure removes the folder', async () => {
    const p = project()
    p.writeScenario({
      ...p.scenario,
      services: { ...(p.scenario.services as object), clickhouse: { state: 'running' } },
    })
    const ok = await runScript(p, 'scripts/backup.mts', ['--clickhouse'])
    assertNoSecrets(ok)
    expect(ok.code).toBe(0)
    const [name] = backups(p)
    expect(p.calls()).toContain(
      `compose exec -T clickhouse clickhouse-client --query BACKUP DATABASE posthog TO File('/backups/${name}/')`,
    )
    expect(readManifest(path.join(p.backupDir, name!))?.clickhouse?.folder).toBe(
      path.join(p.backupDir, 'clickhouse', name!),
    )

    const q = project()
    q.writeScenario({
      ...q.scenario,
      services: { ...(q.scenario.services as object), clickhouse: { state: 'running' } },
      exec: {
        clickhouse: {
          stderr: 'Code: 318. DB::Exception: Path is not allowed for backups. (INVALID_CONFIG_PARAMETER)',
          exitCode: 36,
        },
      },
    })
    const failed = await runScript(q, 'scripts/backup.mts', ['--clickhouse'])
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(/ClickHouse BACKUP failed \(exit 36\): Code: 318.*docs\/operations.md/)
    expect(backups(q)).toEqual([])
  })
})

describe('a backup killed midway', () => {
  /** Folders that are not ours: the next run must leave them exactly as they are. */
  function foreignFolders(p: Project): void {
    fs.mkdirSync(path.join(p.backupDir, 'keep-me'), { recursive: true })
    fs.mkdirSync(path.join(p.backupDir, '20190101T000000Z')) // our naming, no manifest
    fs.mkdirSync(path.join(p.backupDir, '20190102T000000Z.partial')) // our suffix, someone else's file
    fs.writeFileSync(path.join(p.backupDir, '20190102T000000Z.partial', 'notes.txt'), 'mine')
  }
  const FOREIGN = ['20190101T000000Z', '20190102T000000Z.partial', 'keep-me']

  /** Starts a backup, waits for `ready`, SIGKILLs its process group (node and the fake docker). */
  async function killWhen(p: Project, ready: () => boolean, args: string[] = []): Promise<RunResult> {
    let pid = 0
    const running = runScript(p, 'scripts/backup.mts', args, { onSpawn: (x) => (pid = x) })
    await whileRunning(running, ready) // a quick run may end first: then the kill finds nothing
    try {
      process.kill(-pid, 'SIGKILL')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e // ESRCH: it had finished already
    }
    return running
  }

  const partials = (p: Project) => backups(p).filter((b) => b.endsWith('.partial') && !FOREIGN.includes(b))

  async function nextRunCleansUp(p: Project, left: string[]): Promise<void> {
    const res = await runScript(p, 'scripts/backup.mts', [])
    assertNoSecrets(res)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    for (const name of left)
      expect(res.stdout).toContain(
        `removed an incomplete backup left by an interrupted run: ${path.join(p.backupDir, name)}`,
      )
    expect(partials(p)).toEqual([])
    for (const f of FOREIGN) expect(fs.existsSync(path.join(p.backupDir, f))).toBe(true)
    expect(fs.readFileSync(path.join(p.backupDir, '20190102T000000Z.partial', 'notes.txt'), 'utf8')).toBe(
      'mine',
    )
    for (const b of listBackups(p.backupDir)) expect(await verifyBackup(b.dir)).toEqual([])
  }

  it('during pg_dump: the half-written folder is recognised, reported and removed by the next run', async () => {
    const p = project()
    foreignFolders(p)
    p.writeScenario({
      ...p.scenario,
      rules: [{ match: 'exec -T db pg_dump', stdout: 'PGDMP partial output', delayMs: 30_000, times: 1 }],
    })
    const killed = await killWhen(p, () => p.calls().some((c) => c.includes('pg_dump')))
    expect(killed.code).not.toBe(0)
    const left = partials(p)
    expect(left).toHaveLength(1)
    expect(listBackups(p.backupDir)).toEqual([]) // never taken for a backup
    await nextRunCleansUp(p, left)
    expect(listBackups(p.backupDir)).toHaveLength(1)
  })

  it('during the ClickHouse BACKUP: the folder and the part ClickHouse had begun are removed', async () => {
    const p = project()
    foreignFolders(p)
    p.writeScenario({
      ...p.scenario,
      services: { ...(p.scenario.services as object), clickhouse: { state: 'running' } },
      rules: [{ match: 'clickhouse-client --query BACKUP', delayMs: 30_000, times: 1 }],
    })
    await killWhen(p, () => p.calls().some((c) => c.includes('clickhouse-client')), ['--clickhouse'])
    const left = partials(p)
    expect(left).toHaveLength(1)
    // what the server had written of its part (the fake docker writes nothing itself)
    const part = path.join(p.backupDir, 'clickhouse', left[0]!.replace('.partial', ''))
    fs.mkdirSync(part, { recursive: true })
    fs.writeFileSync(path.join(part, '.backup'), 'unfinished')
    await nextRunCleansUp(p, left)
    expect(fs.existsSync(part)).toBe(false)
  })

  it('at any moment: whatever a kill leaves, the next run leaves only whole backups', async () => {
    const p = project()
    foreignFolders(p)
    // kills spread over the run: as soon as its folder appears, and later into pg_dump and the manifest
    for (const afterMs of [0, 5, 20, 60, 150, 400, 1000]) {
      const before = new Set(backups(p))
      let appeared = 0
      await killWhen(p, () => {
        if (!appeared && backups(p).some((b) => !before.has(b))) appeared = Date.now()
        return appeared > 0 && Date.now() - appeared >= afterMs
      })
      await nextRunCleansUp(p, partials(p))
    }
  })
})
