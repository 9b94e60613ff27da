import fs from 'node:fs'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { makeProject, type Project, runOnTty, runScript, secretsIn } from '../helpers/stack-env.ts'

let project: Project
afterEach(() => project?.cleanup())

function withStack(): Project {
  project = makeProject()
  fs.mkdirSync(project.stackDir, { recursive: true })
  fs.writeFileSync(path.join(project.stackDir, 'docker-compose.yml'), 'services: {}\n')
  fs.writeFileSync(path.join(project.stackDir, 'secrets.sha256.json'), '{}\n')
  project.scenario({
    services: { db: { state: 'running' }, web: { state: 'running' } },
    volumes: ['postgres-data', 'clickhouse-data'],
  })
  return project
}

const downOnTty = (p: Project, answer: string) =>
  runOnTty('down', ['--volumes'], p, { prompt: 'to delete these volumes:', answer })

const downs = (p: Project) => p.calls().filter((c) => c[0] === 'compose' && c[1] === 'down')

describe('down', () => {
  it('stops the stack and keeps every volume', async () => {
    const p = withStack()
    const res = await runScript('down', [], p)
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toMatch(/every volume \(your data\) is kept/)
    expect(downs(p)).toEqual([['compose', 'down', '--timeout', '60']])
    expect(fs.existsSync(path.join(p.stackDir, 'secrets.sha256.json'))).toBe(true)
    expect(fs.existsSync(path.join(p.stackDir, '.lock'))).toBe(false)
    expect(secretsIn(res, p)).toEqual([])
  })

  it('--volumes without a terminal and without --yes deletes nothing and exits 2', async () => {
    const p = withStack()
    const res = await runScript('down', ['--volumes'], p)
    expect(res.code).toBe(2)
    expect(res.stdout).toContain('posthog_postgres-data')
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/pass --yes; nothing was deleted/)
    expect(downs(p)).toEqual([])
    expect(secretsIn(res, p)).toEqual([])
  })

  it('--volumes --yes lists the volumes, then deletes them and forgets the secret fingerprints', async () => {
    const p = withStack()
    const res = await runScript('down', ['--volumes', '--yes'], p)
    expect(res.code, res.stderr).toBe(0)
    const listed = res.stdout.indexOf('posthog_clickhouse-data')
    expect(listed).toBeGreaterThan(-1)
    expect(res.stdout.indexOf('deleted 2 volumes')).toBeGreaterThan(listed)
    expect(downs(p)).toEqual([['compose', 'down', '--timeout', '60', '--volumes']])
    expect(fs.existsSync(path.join(p.stackDir, 'secrets.sha256.json'))).toBe(false)
    expect(secretsIn(res, p)).toEqual([])
  })

  it('says so when there is no stack', async () => {
    project = makeProject()
    const res = await runScript('down', [], project)
    expect(res.code).toBe(0)
    expect(res.stdout).toMatch(/nothing to stop/)
    expect(project.calls()).toEqual([])
  })

  it('exits 1 with one line when Docker is down', async () => {
    const p = withStack()
    p.scenario({ daemon: false })
    const res = await runScript('down', [], p)
    expect(res.code).toBe(1)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(/Cannot connect to the Docker daemon.*try again/)
  })

  it('--volumes on a terminal deletes only after the project name is typed', async () => {
    const p = withStack()
    const wrong = await downOnTty(p, 'yes')
    expect(wrong.code).toBe(2)
    expect(wrong.stdout).toContain('posthog_postgres-data')
    expect(wrong.stdout).toMatch(/'yes' is not 'posthog'; nothing was deleted/)
    expect(downs(p)).toEqual([])
    const right = await downOnTty(p, 'posthog')
    expect(right.code, right.stdout).toBe(0)
    expect(downs(p)).toEqual([['compose', 'down', '--timeout', '60', '--volumes']])
    expect(secretsIn(right, p)).toEqual([])
  })
})
