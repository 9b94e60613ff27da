// The move into a new PostgreSQL major and its undoing, step by step against the fake docker
// (volumes as content tokens): every state the journal can hold resumes to the same end, and
// no volume holding data is removed before a verified copy of it exists.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mergeEnv, toConfig } from '../../../lib/core/env.mts'
import { buildManifest, describeFiles, EXTRA_DUMP, MANIFEST, PG_DUMP_FILE } from '../../../lib/ops/backup.mts'
import { moveIntoNewMajor, undoMove } from '../../../lib/ops/pg-major.mts'
import type { PostgresMajorState } from '../../../lib/ops/upgrade-journal.mts'
import { dockerCalls, FAKES, fakeDockerStateFile, scratchDir, writeScenario } from '../../helpers/common.ts'

const VOLUME = 'posthog_postgres-data'
const OLD = `${VOLUME}@initial`
const saved = {
  DOCKER_BIN: process.env.DOCKER_BIN,
  SCENARIO: process.env.FAKE_DOCKER_SCENARIO,
  LOG: process.env.FAKE_DOCKER_LOG,
}

beforeAll(() => {
  process.env.DOCKER_BIN = path.join(FAKES, 'docker')
})
afterAll(() => {
  for (const [k, v] of Object.entries({
    DOCKER_BIN: saved.DOCKER_BIN,
    FAKE_DOCKER_SCENARIO: saved.SCENARIO,
    FAKE_DOCKER_LOG: saved.LOG,
  }))
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
})

async function setup() {
  const dir = scratchDir('pg-major-')
  const stackDir = path.join(dir, 'stack')
  fs.mkdirSync(stackDir)
  fs.writeFileSync(
    path.join(stackDir, 'docker-compose.yml'),
    'services:\n  db:\n    image: postgres:17.2-alpine\n',
  )
  fs.writeFileSync(path.join(stackDir, 'docker-compose.override.yml'), 'services: {}\n')
  const scenario = path.join(dir, 'scenario.json')
  const log = path.join(dir, 'docker.log')
  writeScenario(scenario, { services: { db: { state: 'running' }, web: { state: 'running' } } })
  process.env.FAKE_DOCKER_SCENARIO = scenario
  process.env.FAKE_DOCKER_LOG = log
  const backupDir = path.join(dir, 'backups', '20260101T000000Z')
  fs.mkdirSync(backupDir, { recursive: true })
  fs.writeFileSync(path.join(backupDir, PG_DUMP_FILE), 'PGDMP posthog')
  fs.writeFileSync(path.join(backupDir, EXTRA_DUMP('temporal')), 'PGDMP temporal')
  const raw = mergeEnv({ POSTHOG_SECRET: 's'.repeat(56), ENCRYPTION_SALT_KEYS: 'k'.repeat(32) }, {})
  const manifest = buildManifest({
    cfg: toConfig(dir, path.join(dir, '.env'), raw),
    files: await describeFiles(backupDir),
    createdAt: new Date('2026-01-01T00:00:00Z'),
    extraDatabases: ['temporal'],
  })
  fs.writeFileSync(path.join(backupDir, MANIFEST), JSON.stringify(manifest))
  const states: PostgresMajorState[] = []
  const state: PostgresMajorState = {
    from: '15',
    to: '17',
    volume: VOLUME,
    aside: `${VOLUME}-pg15-20260101T000000Z`,
    image: 'postgres:17.2-alpine',
    state: 'planned',
  }
  const opts = (s: PostgresMajorState) => ({
    stackDir,
    backupDir,
    state: s,
    save: (x: PostgresMajorState) => states.push(x),
    log: () => {},
  })
  const volumes = (): Record<string, { content: string; labels: Record<string, string> }> =>
    JSON.parse(fs.readFileSync(fakeDockerStateFile(scenario), 'utf8')).volumes
  const calls = () => dockerCalls(log).map((a) => a.join(' '))
  return { state, states, opts, volumes, calls }
}

/** One call of the fake docker, as a step of a run that was cut short would have made it. */
function fakeDocker(args: string[]): void {
  const r = spawnSync(process.env.DOCKER_BIN!, args, { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`fake docker ${args.join(' ')}: ${r.stderr}`)
}

describe('moving into a new PostgreSQL major', () => {
  it('copies aside, removes, starts the new db and restores every database, journalling each step', async () => {
    const t = await setup()
    const end = await moveIntoNewMajor(t.opts(t.state))
    expect(t.states.map((s) => s.state)).toEqual(['copied', 'moved', 'restored'])
    expect(end.state).toBe('restored')
    const v = t.volumes()
    expect(v[t.state.aside]!.content).toBe(OLD)
    expect(v[t.state.aside]!.labels).toEqual({
      'dev.posthog-homelab.aside-of': VOLUME,
      'dev.posthog-homelab.postgres-major': '15',
    })
    expect(v[VOLUME]!.content).toMatch(/^fresh@/)
    const calls = t.calls()
    const rmVolume = calls.indexOf(`volume rm ${VOLUME}`)
    expect(rmVolume).toBeGreaterThan(calls.findIndex((c) => c.startsWith('run --rm')))
    expect(calls.filter((c) => c.includes('pg_restore')).map((c) => / -d (\S+)/.exec(c)?.[0].trim())).toEqual(
      ['-d posthog', '-d temporal'],
    )
    expect(calls).toContain('compose exec -T db createdb -U posthog temporal')
  })

  it('resumes from every journalled state to the same end', async () => {
    for (const killedAfter of ['copied', 'moved'] as const) {
      const t = await setup()
      // killed right after the journal says `killedAfter`
      const kill = (x: PostgresMajorState) => {
        t.states.push(x)
        if (x.state === killedAfter) throw new Error('SIGKILL')
      }
      await expect(moveIntoNewMajor({ ...t.opts(t.state), save: kill })).rejects.toThrow('SIGKILL')
      if (killedAfter === 'moved') fakeDocker(['compose', 'up', '-d', '--no-deps', 'db']) // a new db had started
      const end = await moveIntoNewMajor(t.opts(t.states.at(-1)!))
      expect(end.state, killedAfter).toBe('restored')
      expect(t.volumes()[t.state.aside]!.content).toBe(OLD)
      expect(t.volumes()[VOLUME]!.content).toMatch(/^fresh@/)
    }
    // killed during the copy: a partial aside volume is replaced by a full copy of the intact original
    const t = await setup()
    fakeDocker(['volume', 'create', t.state.aside])
    expect(t.volumes()[t.state.aside]!.content).toBe('')
    await moveIntoNewMajor(t.opts(t.state))
    expect(t.volumes()[t.state.aside]!.content).toBe(OLD)
  })

  it('a second run after it is done changes no volume', async () => {
    const t = await setup()
    const end = await moveIntoNewMajor(t.opts(t.state))
    const before = t.volumes()
    await moveIntoNewMajor(t.opts(end))
    expect(t.volumes()).toEqual(before)
  })
})

describe('undoing the move (rollback)', () => {
  it('keeps the new data aside, then copies the old data back under the volume name', async () => {
    const t = await setup()
    const moved = await moveIntoNewMajor(t.opts(t.state))
    const newData = t.volumes()[VOLUME]!.content
    t.states.length = 0
    const end = await undoMove(t.opts(moved))
    expect(t.states.map((s) => s.rollback)).toEqual([undefined, 'new-aside', 'old-back'])
    expect(t.states[0]!.newAside).toMatch(new RegExp(`^${VOLUME}-pg17-\\d{8}T\\d{6}Z$`))
    const v = t.volumes()
    expect(v[VOLUME]!.content).toBe(OLD)
    expect(v[VOLUME]!.labels['com.docker.compose.project']).toBe('posthog')
    expect(v[end.newAside!]!.content).toBe(newData)
    expect(v[t.state.aside]!.content).toBe(OLD) // the kept copy stays
  })

  it('a rollback cut short resumes into the same volumes', async () => {
    const t = await setup()
    const moved = await moveIntoNewMajor(t.opts(t.state))
    const first = await undoMove(t.opts(moved))
    // as if killed after keeping the new data aside but before the old data came back
    await undoMove(t.opts({ ...first, rollback: 'new-aside' }))
    const names = Object.keys(t.volumes()).sort()
    expect(names).toEqual([t.state.aside, first.newAside!, VOLUME, 'posthog_clickhouse-data'].sort())
    expect(t.volumes()[VOLUME]!.content).toBe(OLD)
  })

  it('nothing to undo while the original volume was never removed', async () => {
    const t = await setup()
    for (const state of ['planned', 'copied'] as const) {
      expect(await undoMove(t.opts({ ...t.state, state }))).toEqual({ ...t.state, state })
      expect(t.calls()).toEqual([])
    }
  })
})
