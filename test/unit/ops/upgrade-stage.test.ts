// The steps before an upgrade's switch that decide on their own: the image pull's retries (a
// stand-in compose runner), and what a PostgreSQL major change is allowed to do.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import type { CommandResult } from '../../../lib/core/exec.mts'
import { majorChanges } from '../../../lib/ops/upgrade.mts'
import { PULL_ATTEMPTS, postgresMajorPlan, pullImages } from '../../../lib/ops/upgrade-stage.mts'
import { scratchDir } from '../../helpers/common.ts'

function result(ok: boolean, stderr = ''): CommandResult {
  return {
    argv: [],
    stdout: '',
    stderr,
    exitCode: ok ? 0 : 1,
    signal: null,
    ok,
    timedOut: false,
    durationMs: 1,
  }
}

/** A compose runner answering with `answers` in turn; records each call and when it came. */
function fakeCompose(answers: CommandResult[]) {
  const calls: { args: string[]; at: number }[] = []
  const run = async (_dir: string, args: string[]) => {
    calls.push({ args, at: Date.now() })
    return answers[calls.length - 1] ?? result(true)
  }
  return { run, calls }
}

describe('image pull', () => {
  it('retries a failed pull twice, the n-th retry after n backoffs, saying so each time', async () => {
    const fake = fakeCompose([
      result(false, 'net/http: TLS handshake timeout'),
      result(false, 'EOF'),
      result(true),
    ])
    const lines: string[] = []
    await pullImages('/stack', ['web', 'db'], { backoffMs: 40, log: (l) => lines.push(l), compose: fake.run })
    expect(fake.calls.map((c) => c.args)).toEqual(Array(3).fill(['pull', 'web', 'db']))
    expect(lines).toEqual([
      'image pull failed (net/http: TLS handshake timeout); retry 1 of 2 shortly',
      'image pull failed (EOF); retry 2 of 2 shortly',
    ])
    const [a, b, c] = fake.calls.map((x) => x.at)
    expect(b! - a!).toBeGreaterThanOrEqual(35)
    expect(c! - b!).toBeGreaterThanOrEqual(75)
  })

  it(`gives up after ${PULL_ATTEMPTS} attempts with docker's last line, without waiting after the last`, async () => {
    const fake = fakeCompose(Array(5).fill(result(false, 'Error: manifest unknown\n')))
    const lines: string[] = []
    const started = Date.now()
    const pull = pullImages('/stack', ['web'], {
      backoffMs: 10,
      log: (l) => lines.push(l),
      compose: fake.run,
    })
    await expect(pull).rejects.toThrow(/^Error: manifest unknown$/)
    expect(fake.calls).toHaveLength(3)
    expect(lines).toHaveLength(2)
    expect(Date.now() - fake.calls[2]!.at).toBeLessThan(200)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('a pull that works at once is neither retried nor logged', async () => {
    const fake = fakeCompose([result(true)])
    const lines: string[] = []
    await pullImages('/stack', ['web'], { backoffMs: 10, log: (l) => lines.push(l), compose: fake.run })
    expect(fake.calls).toHaveLength(1)
    expect(lines).toEqual([])
  })
})

describe('PostgreSQL major plan', () => {
  const stackWith = (compose: string) => {
    const dir = scratchDir('pgplan-')
    fs.writeFileSync(path.join(dir, 'docker-compose.yml'), compose)
    return dir
  }
  const named = stackWith('services:\n  db:\n    volumes: [postgres-data:/var/lib/postgresql/data]\n')
  const plan = (from: string, to: string) => ({ to: 'v2', majors: majorChanges({ db: from }, { db: to }) })
  const major = plan('postgres:15.12-alpine', 'postgres:17.2-alpine')

  it('moves a new major only when asked, into an aside volume named after the old major', () => {
    expect(() => postgresMajorPlan(named, major, false, () => {})).toThrow(
      /^PostgreSQL 15 -> 17 \(db: postgres:15.12-alpine -> postgres:17.2-alpine\) is a major upgrade: .*upgrade --to v2 --postgres-major/,
    )
    const state = postgresMajorPlan(named, major, true, () => {})
    expect(state).toMatchObject({
      from: '15',
      to: '17',
      volume: 'posthog_postgres-data',
      image: 'postgres:17.2-alpine',
      state: 'planned',
    })
    expect(state?.aside).toMatch(/^posthog_postgres-data-pg15-\d{8}T\d{6}Z$/)
  })

  it('refuses a downgrade even when asked, and a bind-mounted data directory', () => {
    const down = plan('postgres:17.2-alpine', 'postgres:15.12-alpine')
    expect(() => postgresMajorPlan(named, down, true, () => {})).toThrow(UsageError)
    expect(() => postgresMajorPlan(named, down, true, () => {})).toThrow(/is a downgrade/)
    const bind = stackWith('services:\n  db:\n    volumes: ["./pgdata:/var/lib/postgresql/data"]\n')
    expect(() => postgresMajorPlan(bind, major, true, () => {})).toThrow(/bind mount, not a named volume/)
  })

  it('lets an unknown version line through unless asked, and says when there is nothing to move', () => {
    const unknown = plan('postgres:15.12-alpine', 'postgres:latest')
    expect(postgresMajorPlan(named, unknown, false, () => {})).toBeUndefined()
    expect(postgresMajorPlan(named, unknown, true, () => {})).toMatchObject({ from: '15', to: 'new' })
    const lines: string[] = []
    expect(postgresMajorPlan(named, { to: 'v2', majors: [] }, true, (l) => lines.push(l))).toBeUndefined()
    expect(lines).toEqual(['--postgres-major: PostgreSQL keeps its major version; there is nothing to move'])
    expect(postgresMajorPlan(named, { to: 'v2', majors: [] }, false, (l) => lines.push(l))).toBeUndefined()
    expect(lines).toHaveLength(1)
  })
})
