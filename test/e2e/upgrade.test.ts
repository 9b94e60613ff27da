// scripts/upgrade.mts as a black box: a real PostHog-like git repository (tags v1, v2, v3) served
// over smart HTTP, the fake docker, a real PostgreSQL for the backup, and a /_health server that
// answers from the live .env and the fake docker's state. Scenarios: a clean upgrade (call
// order), a dry run, a pull failure (nothing changed), migrations that never finish (rolled
// back), a kill -9 midway (a re-run finishes it, or rolls it back with --rollback), and a target
// with new PostgreSQL and ClickHouse majors (refused, or moved with --postgres-major; the fake
// docker keeps volumes as tokens and empties the real PostgreSQL when the db gets a new volume).
// The compose files come from the fixture repository's own tags.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../lib/core/env.mts'
import { EXTRA_DUMP, listBackups } from '../../lib/ops/backup.mts'
import { readJournal } from '../../lib/ops/upgrade-journal.mts'
import { readVersion } from '../../lib/stack/posthog-version.mts'
import { prepareStack } from '../../lib/stack/prepare.mts'
import {
  assertNoSecrets,
  healthServer,
  makeProject,
  type Project,
  runScript,
  serviceStates,
} from '../helpers/backup-env.ts'
import { FAKES, fakeDockerStateFile, ruleTaken, scratchDir, whileRunning } from '../helpers/common.ts'
import { addCommit, git, makePosthogRepo, type RepoServer, serveRepo } from '../helpers/fixture-repo.ts'
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts'

let pg: TestPostgres
let repo: ReturnType<typeof makePosthogRepo>
let server: RepoServer
let health: Awaited<ReturnType<typeof healthServer>>
let current: Project | undefined
/** web at this tag never finishes its migrations. */
let stuckAt: string | undefined
const probes: { time: number; status: number }[] = []

function liveTag(p: Project): string {
  return /^POSTHOG_APP_TAG=(.*)$/m.exec(fs.readFileSync(p.envFile, 'utf8'))?.[1] ?? ''
}

beforeAll(async () => {
  // prepareStack runs in this process too: `latest` asks the (fake) registry which images exist.
  process.env.DOCKER_BIN = path.join(FAKES, 'docker')
  pg = startPostgres()
  pg.psql('CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)')
  const tmp = scratchDir('upgrade-repo-')
  repo = makePosthogRepo(path.join(tmp, 'posthog.git'), { commits: 6, unrelatedFiles: 50 })
  const show = (file: string) => git(['show', `v2:${file}`], { cwd: repo.dir })
  const hobby = show('docker-compose.hobby.yml')
  // v3 adds a service and drops one, for the dry-run plan.
  const v3Hobby = hobby
    .replace(/^ {4}livestream:\n(?: {8}.*\n|\n)*/m, '')
    .replace(/^services:\n/m, 'services:\n    brand-new:\n        image: example/brand-new:1\n\n')
  addCommit(repo.dir, { 'docker-compose.hobby.yml': v3Hobby }, 'v3: brand-new service', { tag: 'v3' })
  // `majors`: v2 with PostgreSQL 17 and a new ClickHouse release line, on a tag only (main stays v3).
  const main = git(['rev-parse', 'refs/heads/main'], { cwd: repo.dir })
  addCommit(
    repo.dir,
    {
      'docker-compose.hobby.yml': hobby.replace(/postgres:15\.\d+-alpine/, 'postgres:17.2-alpine'),
      'docker-compose.base.yml': show('docker-compose.base.yml').replace(
        /clickhouse-server:[\d.]+/,
        'clickhouse-server:27.1.1.1',
      ),
    },
    'majors: PostgreSQL 17, ClickHouse 27.1',
    { tag: 'majors' },
  )
  git(['update-ref', 'refs/heads/main', main], { cwd: repo.dir })
  server = await serveRepo(repo.dir)
  health = await healthServer(() => {
    const p = current
    const web = p ? serviceStates(p).web?.state : undefined
    const answer =
      web !== 'running'
        ? { status: 502, body: '' }
        : stuckAt && p && liveTag(p) === stuckAt
          ? { status: 503, body: 'Migrations are not up to date' }
          : { status: 200, body: 'ok' }
    probes.push({ time: Date.now(), status: answer.status })
    return answer
  })
}, 120_000)

afterAll(async () => {
  pg?.stop()
  await server?.close()
  await health?.close()
})

/** A project whose live stack was prepared at v1 and runs (every service of the hobby file). */
async function project(tag = 'v1'): Promise<Project> {
  const p = makeProject({
    POSTHOG_APP_TAG: tag,
    POSTHOG_REPO_URL: server.url,
    POSTHOG_PROXY_HTTP_PORT: String(health.port),
    HEALTH_TIMEOUT: '20s',
  })
  const prepared = await prepareStack(loadConfig({ envFile: p.envFile, env: {} }), {
    geoip: false,
    log: () => {},
  })
  p.writeScenario({
    services: Object.fromEntries(prepared.services.map((s) => [s, { state: 'running' }])),
    pgForward: { host: pg.host, port: pg.port, binDir: pg.binDir },
  })
  current = p
  stuckAt = undefined
  return p
}

const ENV = {
  HOMELAB_NO_GEOIP: '1',
  HOMELAB_RETRY_BACKOFF: '10ms',
  HOMELAB_SETTLE: '300ms',
  HOMELAB_MIN_FREE_DISK_GB: '0.01',
}

function upgrade(p: Project, args: string[], opts: Parameters<typeof runScript>[3] = {}) {
  return runScript(p, 'scripts/upgrade.mts', args, { ...opts, env: { ...ENV, ...opts.env } })
}

/** Every file under STACK_DIR (and the .env) with its hash, mtime and mode, minus the upgrade's own records. */
function tree(p: Project): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(p.stackDir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${e.name}` : e.name
      // git's own bookkeeping in the checkout changes with every fetch; its worktree must not.
      if (['upgrades.log', '.lock', 'upgrade.state.json', 'posthog/.git'].includes(child)) continue
      if (e.isDirectory()) walk(child)
      else if (e.isFile()) out[child] = fingerprintOf(path.join(p.stackDir, child))
    }
  }
  walk('')
  out['<.env>'] = fingerprintOf(p.envFile)
  return out
}

function fingerprintOf(file: string): string {
  const st = fs.statSync(file)
  return `${crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')} ${st.mtimeMs} ${st.mode & 0o777}`
}

function contentOnly(t: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.split(' ')[0]!]))
}

function upgradesLog(p: Project): string[] {
  const file = path.join(p.stackDir, 'upgrades.log')
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : []
}

function callTimes(p: Project): { call: string; time: number }[] {
  return fs
    .readFileSync(p.logFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { argv: string[]; time: number })
    .map((e, i) => ({ call: p.calls()[i]!, time: e.time }))
}

describe('upgrade', () => {
  it('dry run prints the plan from the target compose files and changes nothing', async () => {
    const p = await project()
    const before = tree(p)
    const res = await upgrade(p, ['--to', 'v3', '--dry-run'])
    assertNoSecrets(res)
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/PostHog v1 \([0-9a-f]{12}\) -> v3 \([0-9a-f]{12}\)/)
    expect(res.stdout).toMatch(/services added: brand-new/)
    expect(res.stdout).toMatch(/services removed: livestream/)
    expect(res.stdout).toMatch(/images to pull \(\d+\): .*example\/brand-new:1.*posthog\/posthog:v3/)
    expect(res.stdout).toMatch(/nothing was changed/)
    expect(tree(p)).toEqual(before)
    expect(p.calls()).toEqual([])
  })

  it('clean upgrade: backup, pull, stop, web, wait, up, wait; logged', async () => {
    const p = await project()
    probes.length = 0
    const res = await upgrade(p, ['--to', 'v2'])
    assertNoSecrets(res)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(liveTag(p)).toBe('v2')
    const calls = callTimes(p).filter((c) => !/^compose (ps|config)|^inspect/.test(c.call))
    const order = [
      'exec -T db pg_dump',
      'compose pull',
      'compose stop',
      'compose up -d --no-deps web proxy',
      'compose up -d --no-build',
    ]
    const at = order.map((o) => calls.findIndex((c) => c.call.includes(o)))
    expect(at.every((i) => i >= 0)).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)
    const stopped = calls[at[2]!]!.call.split(' ').slice(2)
    expect(stopped).toEqual(expect.arrayContaining(['plugins', 'ingestion-general', 'worker']))
    expect(stopped).not.toContain('web')
    expect(stopped).not.toContain('db')
    // wait: /_health answered (not 5xx) after web started and before everything else started ...
    const webAt = calls[at[3]!]!.time
    const allAt = calls[at[4]!]!.time
    expect(probes.some((pr) => pr.time >= webAt && pr.time <= allAt && pr.status < 500)).toBe(true)
    // ... and 200 after everything started.
    expect(probes.some((pr) => pr.time >= allAt && pr.status === 200)).toBe(true)
    expect(upgradesLog(p).at(-1)).toMatch(/\tfrom=v1\tto=v2\tresult=ok$/)
    expect(readJournal(p.stackDir)).toBeUndefined()
    expect(fs.existsSync(path.join(p.stackDir, '.upgrade-staging'))).toBe(false)
    expect(fs.existsSync(path.join(p.stackDir, '.upgrade-previous'))).toBe(false)
    expect(fs.readdirSync(p.backupDir)).toHaveLength(1)
  })

  it('a pull failure changes nothing: files and .env byte-identical, same mtimes', async () => {
    const p = await project()
    p.writeScenario({
      ...p.scenario,
      rules: [
        {
          match: '^compose pull',
          exitCode: 1,
          stderr: 'Error response from daemon: manifest for posthog/posthog:v2 not found',
        },
      ],
    })
    const before = tree(p)
    const res = await upgrade(p, ['--to', 'v2'])
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(
      /pulling the images of PostHog v2 failed: .*manifest for posthog\/posthog:v2 not found; nothing was changed/,
    )
    expect(res.stderr).toMatch(/backup: /)
    expect(tree(p)).toEqual(before)
    expect(p.calls().filter((c) => /compose (stop|up)/.test(c))).toEqual([])
    expect(upgradesLog(p).at(-1)).toMatch(/result=failed\tpull failed/)
    expect(readJournal(p.stackDir)).toBeUndefined()
  })

  it('migrations that never finish: rolled back, previous version healthy, exit 1', async () => {
    const p = await project()
    const before = contentOnly(tree(p))
    stuckAt = 'v2'
    const res = await upgrade(p, ['--to', 'v2', '--timeout', '3s'])
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    const last = res.stderr.trim().split('\n').at(-1)!
    expect(last).toMatch(
      /upgrade to v2 failed \(migrations failed: web's migrations did not finish within 3s/,
    )
    expect(last).toMatch(/rolled back to v1, which is healthy again; backup: \S+/)
    expect(liveTag(p)).toBe('v1')
    expect(contentOnly(tree(p))).toEqual(before)
    expect(serviceStates(p).web?.state).toBe('running')
    expect(upgradesLog(p).at(-1)).toMatch(/from=v1\tto=v2\tresult=rolled-back\tmigrations failed/)
    expect(readJournal(p.stackDir)).toBeUndefined()
  })

  async function crashDuringMigrations(p: Project): Promise<void> {
    p.writeScenario({
      ...p.scenario,
      rules: [{ match: 'up -d --no-deps web proxy', delayMs: 30_000, times: 1 }],
    })
    let pid = 0
    const running = upgrade(p, ['--to', 'v2'], { onSpawn: (x) => (pid = x) })
    // Killed while the fake docker holds the web start (its rule taken), as a crash mid-migration.
    expect(await whileRunning(running, () => ruleTaken(p.scenarioFile, 0))).toBe(true)

    process.kill(-pid, 'SIGKILL')
    await running
    expect(readJournal(p.stackDir)?.step).toBe('migrating')
  }

  it('a kill -9 midway: re-running finishes the upgrade', async () => {
    const p = await project()
    await crashDuringMigrations(p)
    const res = await upgrade(p, [])
    assertNoSecrets(res)
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/found an interrupted upgrade v1 -> v2 \(step migrating\)/)
    expect(liveTag(p)).toBe('v2')
    expect(readJournal(p.stackDir)).toBeUndefined()
    expect(upgradesLog(p).at(-1)).toMatch(/to=v2\tresult=ok\tresumed after an interruption at migrating/)
  })

  it('a kill -9 midway: re-running with --rollback restores the previous version', async () => {
    const p = await project()
    const before = contentOnly(tree(p))
    await crashDuringMigrations(p)
    const res = await upgrade(p, ['--rollback'])
    assertNoSecrets(res)
    expect(res.code).toBe(0)
    expect(liveTag(p)).toBe('v1')
    expect(contentOnly(tree(p))).toEqual(before)
    expect(upgradesLog(p).at(-1)).toMatch(/to=v2\tresult=rolled-back/)
  })

  it('a rollback from a branch that moved on puts the checkout back at its old commit', async () => {
    const p = await project('latest')
    const before = contentOnly(tree(p))
    addCommit(repo.dir, { '.env.services': 'MOVED_ON=1\n' }, 'main moves on after the upgrade began')
    stuckAt = 'v2'
    const res = await upgrade(p, ['--to', 'v2', '--timeout', '3s'])
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    expect(res.stderr.trim().split('\n').at(-1)).toMatch(/rolled back to latest, which is healthy again/)
    expect(liveTag(p)).toBe('latest')
    expect(contentOnly(tree(p))).toEqual(before)
  })

  it('--to latest resolves a frozen latest again and moves it; with nothing newer it says so', async () => {
    const p = await project('latest')
    const frozen = readVersion(p.stackDir)!.commit
    const newer = addCommit(repo.dir, { 'docker/kafka/topics.txt': 'newer\n' }, 'main moves on')
    const res = await upgrade(p, ['--to', 'latest'])
    assertNoSecrets(res)
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toContain(`PostHog latest (${frozen.slice(0, 12)}) -> latest (${newer.slice(0, 12)})`)
    expect(res.stdout).toContain(`posthog/posthog:${newer}`) // the images pulled are that commit's
    expect(readVersion(p.stackDir)).toMatchObject({
      ref: 'latest',
      kind: 'branch',
      commit: newer,
      appTag: newer,
    })
    expect(git(['rev-parse', 'HEAD'], { cwd: path.join(p.stackDir, 'posthog') })).toBe(newer)
    expect(fs.readFileSync(path.join(p.stackDir, '.env'), 'utf8')).toContain(`POSTHOG_APP_TAG=${newer}\n`)
    expect(liveTag(p)).toBe('latest')
    const again = await upgrade(p, ['--to', 'latest'])
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(
      /PostHog latest is already at its newest installable commit [0-9a-f]{12}; nothing to do/,
    )
  })

  it('a target that does not exist is bad input (exit 2, one line), changes nothing and is logged', async () => {
    const p = await project()
    const before = tree(p)
    const res = await upgrade(p, ['--to', 'v9'])
    assertNoSecrets(res)
    expect(res.code).toBe(2)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/could not prepare PostHog v9: .*; nothing was changed/)
    expect(tree(p)).toEqual(before)
    expect(p.calls().filter((c) => /pg_dump|pull|stop|up /.test(c))).toEqual([])
    expect(upgradesLog(p).at(-1)).toMatch(/from=v1\tto=v9\tresult=failed/)
  })

  it('refuses when the target is the current version or PostHog is unhealthy', async () => {
    const p = await project()
    const same = await upgrade(p, ['--to', 'v1'])
    expect(same.code).toBe(2)
    expect(same.stderr).toMatch(/already at v1/)
    p.writeScenario({
      ...p.scenario,
      services: { ...(p.scenario.services as object), web: { state: 'exited' } },
    })
    const sick = await upgrade(p, ['--to', 'v2'])
    expect(sick.code).toBe(1)
    expect(sick.stderr).toMatch(/not healthy now .*pass --force/)
    expect(p.calls().filter((c) => /pg_dump|pull/.test(c))).toEqual([])
  })
})

describe('upgrade across PostgreSQL and ClickHouse majors', () => {
  const DB_VOLUME = 'posthog_postgres-data'
  const OLD_DATA = `${DB_VOLUME}@initial`
  /** A move and a restore on top of an upgrade: more docker calls than the 60 s default allows on a busy machine. */
  const LONG = { timeoutMs: 150_000 }

  /** The fake docker's volumes: name -> { labels, content token }. */
  function volumes(p: Project): Record<string, { labels: Record<string, string>; content: string }> {
    const file = fakeDockerStateFile(p.scenarioFile)
    return (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')).volumes : undefined) ?? {}
  }

  /** PostHog's table and a second database on the same server (Temporal keeps two there). */
  function seedDatabases(): void {
    pg.psql('DROP TABLE IF EXISTS t; CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)')
    if (!pg.psql("SELECT 1 FROM pg_database WHERE datname = 'temporal'").trim())
      pg.psql('CREATE DATABASE temporal')
    temporal("DROP TABLE IF EXISTS w; CREATE TABLE w (run text); INSERT INTO w VALUES ('batch-export')")
  }

  function temporal(sql: string): string {
    return execFileSync(
      path.join(pg.binDir, 'psql'),
      [
        '-h',
        pg.host,
        '-p',
        String(pg.port),
        '-U',
        'posthog',
        '-d',
        'temporal',
        '-v',
        'ON_ERROR_STOP=1',
        '-At',
        '-c',
        sql,
      ],
      {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
      },
    )
  }

  it('dry run names both majors, what is refused and what is not backed up; changes nothing', async () => {
    const p = await project()
    const before = tree(p)
    const res = await upgrade(p, ['--to', 'majors', '--dry-run'])
    assertNoSecrets(res)
    expect(res.code).toBe(0)
    expect(res.stdout).toContain(
      'PostgreSQL 15 -> 17 (db: postgres:15.12-alpine -> postgres:17.2-alpine): a major version the new server cannot read the old data of; refused without --postgres-major',
    )
    expect(res.stdout).toMatch(
      /ClickHouse \d+\.\d+ -> 27\.1 \(clickhouse: \S+ -> clickhouse\/clickhouse-server:27\.1\.1\.1\): a new release line; ClickHouse is NOT backed up \(pass --clickhouse/,
    )
    expect(res.stdout).toContain(
      'backup: .env and PostgreSQL; ClickHouse is NOT backed up (--clickhouse backs it up)',
    )
    expect(tree(p)).toEqual(before)
    expect(p.calls()).toEqual([])
  })

  it('without --postgres-major: refused (exit 2, one line) before anything is backed up or changed', async () => {
    const p = await project()
    const before = tree(p)
    const res = await upgrade(p, ['--to', 'majors'])
    assertNoSecrets(res)
    expect(res.code).toBe(2)
    expect(res.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^upgrade: error: PostgreSQL 15 -> 17 \(db: .*\) is a major upgrade: the new server cannot read the old data\. Run upgrade --to majors --postgres-major/,
      ),
    ])
    expect(tree(p)).toEqual(before)
    expect(p.calls().filter((c) => /pg_dump|pull|stop|up |volume|run /.test(c))).toEqual([])
    expect(upgradesLog(p).at(-1)).toMatch(/to=majors\tresult=failed\trefused: PostgreSQL 15 -> 17/)
    expect(readJournal(p.stackDir)).toBeUndefined()
  })

  it('--postgres-major --clickhouse: every database backed up, old volume kept aside, data restored into 17', async () => {
    const p = await project()
    seedDatabases()
    const res = await upgrade(p, ['--to', 'majors', '--postgres-major', '--clickhouse'], LONG)
    assertNoSecrets(res)
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    expect(liveTag(p)).toBe('majors')

    // The backup holds every database and ClickHouse.
    const [backup] = listBackups(p.backupDir)
    expect(backup!.manifest.extraDatabases).toEqual(['temporal'])
    expect(fs.existsSync(path.join(backup!.dir, EXTRA_DUMP('temporal')))).toBe(true)
    expect(backup!.manifest.clickhouse).toBeDefined()

    // In order: backup, pull, stop everything, free and move the volume, new db, restore, start.
    const calls = p.calls().filter((c) => !/^compose (ps|config)|^inspect|^volume inspect/.test(c))
    const order = [
      'exec -T db pg_dump -U posthog -Fc posthog',
      'exec -T db pg_dump -U posthog -Fc temporal',
      'clickhouse-client --query BACKUP',
      'compose pull',
      'compose stop',
      'compose rm --force --stop db',
      `volume create --label dev.posthog-homelab.aside-of=${DB_VOLUME} --label dev.posthog-homelab.postgres-major=15 ${DB_VOLUME}-pg15-`,
      `run --rm --network none --entrypoint sh -v ${DB_VOLUME}:/from:ro -v ${DB_VOLUME}-pg15-`,
      `volume rm ${DB_VOLUME}`,
      'compose up -d --no-deps db',
      'exec -T db pg_isready -U posthog -h 127.0.0.1',
      'exec -T db pg_restore -U posthog -d posthog',
      'exec -T db createdb -U posthog temporal',
      'exec -T db pg_restore -U posthog -d temporal',
      'compose up -d --no-deps web proxy',
      'compose up -d --no-build',
    ]
    const at = order.map((o) => calls.findIndex((c) => c.includes(o)))
    expect(
      at.every((i) => i >= 0),
      JSON.stringify(order.filter((_, i) => at[i]! < 0)),
    ).toBe(true)
    expect([...at].sort((a, b) => a - b)).toEqual(at)

    // The old data stays aside (not a Compose volume, so `down --volumes` leaves it); the new db
    // started empty and holds what was restored.
    const vols = volumes(p)
    const aside = Object.keys(vols).find((v) => v.startsWith(`${DB_VOLUME}-pg15-`))!
    expect(vols[aside]!.content).toBe(OLD_DATA)
    expect(vols[aside]!.labels['com.docker.compose.project']).toBeUndefined()
    expect(vols[DB_VOLUME]!.content).toMatch(/^fresh@/)
    expect(pg.psql('SELECT id FROM t ORDER BY id').trim().split('\n')).toEqual(['1', '2'])
    expect(temporal('SELECT run FROM w').trim()).toBe('batch-export')
    expect(res.stdout).toContain(`remove it with: docker volume rm ${aside}`)
    expect(upgradesLog(p).at(-1)).toMatch(/from=v1\tto=majors\tresult=ok$/)
    expect(readJournal(p.stackDir)).toBeUndefined()
  })

  it('a kill -9 while the volume is copied: re-running finishes the move and the upgrade', async () => {
    const p = await project()
    seedDatabases()
    p.writeScenario({ ...p.scenario, rules: [{ match: '^run --rm', delayMs: 30_000, times: 1 }] })
    let pid = 0
    const running = upgrade(p, ['--to', 'majors', '--postgres-major'], { onSpawn: (x) => (pid = x) })
    expect(await whileRunning(running, () => ruleTaken(p.scenarioFile, 0))).toBe(true)
    process.kill(-pid, 'SIGKILL')
    await running
    const j = readJournal(p.stackDir)
    expect(j?.step).toBe('postgres-major')
    expect(j?.postgresMajor?.state).toBe('planned')

    const res = await upgrade(p, [], { timeoutMs: 110_000 })
    assertNoSecrets(res)
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/found an interrupted upgrade v1 -> majors \(step postgres-major\)/)
    const vols = volumes(p)
    expect(vols[j!.postgresMajor!.aside]!.content).toBe(OLD_DATA)
    expect(vols[DB_VOLUME]!.content).toMatch(/^fresh@/)
    expect(pg.psql('SELECT count(*) FROM t').trim()).toBe('2')
    expect(liveTag(p)).toBe('majors')
  })

  it('a failure after the move rolls back onto the old data; the new data is kept aside too', async () => {
    const p = await project()
    seedDatabases()
    stuckAt = 'majors'
    const res = await upgrade(p, ['--to', 'majors', '--postgres-major', '--timeout', '3s'], LONG)
    assertNoSecrets(res)
    expect(res.code).toBe(1)
    const last = res.stderr.trim().split('\n').at(-1)!
    expect(last).toMatch(
      /upgrade to majors failed \(migrations failed: .*\); rolled back to v1, which is healthy again/,
    )
    expect(last).toMatch(
      new RegExp(`the PostgreSQL 17 data of the attempt is kept in volume ${DB_VOLUME}-pg17-`),
    )
    const vols = volumes(p)
    expect(vols[DB_VOLUME]!.content).toBe(OLD_DATA) // PostgreSQL 15 starts on its own data again
    expect(vols[DB_VOLUME]!.labels['com.docker.compose.project']).toBe('posthog')
    const kept = Object.entries(vols).filter(([n]) => n !== DB_VOLUME)
    expect(kept.find(([n]) => n.startsWith(`${DB_VOLUME}-pg15-`))?.[1].content).toBe(OLD_DATA)
    expect(kept.find(([n]) => n.startsWith(`${DB_VOLUME}-pg17-`))?.[1].content).toMatch(/^fresh@/)
    expect(liveTag(p)).toBe('v1')
    expect(serviceStates(p).db?.state).toBe('running')
    expect(upgradesLog(p).at(-1)).toMatch(/to=majors\tresult=rolled-back/)
  })
})
