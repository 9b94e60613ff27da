// scripts/prepare.mts as a black box: a generated PostHog-like repository served over real smart
// HTTP on 127.0.0.1, the script spawned as users run it, files, modes, objects and output checked.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { brotliCompressSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseEnvText } from '../../lib/core/env.mts'
import { expectSafeStack, loadStack } from '../helpers/compose-model.ts'
import {
  git,
  makePosthogRepo,
  type PosthogRepo,
  presentBlobPaths,
  type RepoServer,
  serveRepo,
  UNNEEDED_SIBLINGS,
} from '../helpers/fixture-repo.ts'

const ROOT = process.cwd()
let tmp: string
let repo: PosthogRepo
let server: RepoServer

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(project: string, args: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'scripts/prepare.mts'), ...args],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          HOMELAB_ENV_FILE: path.join(project, '.env'),
          STACK_DIR: path.join(project, 'stack'),
          POSTHOG_REPO_URL: server.url,
          POSTHOG_APP_TAG: 'v1',
          HOMELAB_FETCH_RETRIES: '2',
          HOMELAB_FETCH_BACKOFF: '10ms',
          GEOIP_URL: 'http://127.0.0.1:9/unreachable',
          // `latest` asks the registry which commits have images: the fake docker says all do.
          DOCKER_BIN: path.join(ROOT, 'test/fakes/docker'),
          FAKE_DOCKER_SCENARIO: '',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function project(name: string): string {
  const dir = path.join(tmp, name)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

function secretsOf(dir: string): string[] {
  const env = parseEnvText(fs.readFileSync(path.join(dir, '.env'), 'utf8'))
  return [env.POSTHOG_SECRET!, env.ENCRYPTION_SALT_KEYS!].filter(Boolean)
}

function expectNoSecrets(dir: string, r: Run): void {
  for (const s of secretsOf(dir)) {
    expect(r.stdout).not.toContain(s)
    expect(r.stderr).not.toContain(s)
  }
}

/** mtime of every file under STACK_DIR outside the checkout's .git. */
function mtimes(stack: string): Record<string, number> {
  const out: Record<string, number> = {}
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.name === '.git') continue
      if (e.isDirectory()) walk(p)
      else out[path.relative(stack, p)] = fs.statSync(p).mtimeMs
    }
  }
  walk(stack)
  return out
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'prepare-e2e-'))
  repo = makePosthogRepo(path.join(tmp, 'posthog.git'), { commits: 60, unrelatedFiles: 3000 })
  server = await serveRepo(repo.dir)
})

afterAll(async () => {
  await server?.close()
  fs.rmSync(tmp, { recursive: true, force: true })
})

describe('prepare, fetching with stock git', () => {
  let dir: string
  let stack: string

  it('creates .env, fetches only what the stack needs and writes STACK_DIR', async () => {
    dir = project('main')
    stack = path.join(dir, 'stack')
    server.resetStats()
    const r = await run(dir)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/created .*\.env/)
    expect(r.stdout).toMatch(/prepared \(PostHog v1 at [0-9a-f]{12}, 23 of 28 services enabled\)/)
    expect(r.stdout).toMatch(
      /^switched off: live-events off \(livestream; saves about 30 MiB\): no live events/m,
    )
    expect(r.stdout).toMatch(/^switched off: error-tracking off \(cymbal, cymbal-resolution;/m)
    expect(r.stdout).toMatch(/notice: GeoLite2 download from .* failed/)
    expectNoSecrets(dir, r)
    // At most 10 HTTP round trips for the whole fetch.
    expect(server.stats.requests).toBeLessThanOrEqual(10)

    for (const f of [
      'docker-compose.yml',
      'docker-compose.base.yml',
      '.env.services',
      'docker-compose.override.yml',
    ])
      expect(fs.existsSync(path.join(stack, f))).toBe(true)
    expect(fs.statSync(path.join(stack, '.env')).mode & 0o777).toBe(0o600)
    expect(fs.statSync(path.join(dir, '.env')).mode & 0o777).toBe(0o600)
    for (const s of ['start', 'wait', 'temporal-django-worker'])
      expect(fs.statSync(path.join(stack, 'compose', s)).mode & 0o111).toBe(0o111)
    expect(fs.statSync(path.join(stack, 'share')).isDirectory()).toBe(true)
    expect(fs.readFileSync(path.join(stack, 'docker-compose.yml'), 'utf8').trim()).toBe(
      git(['show', 'v1:docker-compose.hobby.yml'], { cwd: repo.dir }),
    )
    const stackEnv = parseEnvText(fs.readFileSync(path.join(stack, '.env'), 'utf8'))
    expect(stackEnv).toMatchObject({
      REGISTRY_URL: 'posthog/posthog',
      POSTHOG_APP_TAG: 'v1',
      DOMAIN: 'localhost',
      TLS_BLOCK: '',
    })
    expect(stackEnv.POSTHOG_SECRET).toBe(secretsOf(dir)[0])

    const checkout = path.join(stack, 'posthog')
    expect(git(['rev-parse', 'HEAD'], { cwd: checkout })).toBe(repo.tags.v1)
    expect(git(['rev-parse', '--is-shallow-repository'], { cwd: checkout })).toBe('true')
    // Exactly the needed blobs were fetched: nothing unrelated, not the siblings of mounted files.
    expect(presentBlobPaths(checkout, repo.dir, repo.tags.v1!)).toEqual([...repo.neededFiles].sort())
    for (const f of Object.keys(UNNEEDED_SIBLINGS)) expect(fs.existsSync(path.join(checkout, f))).toBe(false)
    expect(fs.existsSync(path.join(checkout, 'posthog/idl/nested/schema.json'))).toBe(true)
    expect(fs.existsSync(path.join(checkout, 'rust'))).toBe(true)
    expect(fs.readdirSync(path.join(checkout, 'rust'))).toEqual([])
    const model = loadStack(stack)
    if (model)
      expectSafeStack(model, {
        proxyPort: 18000,
        enabled: ['web', 'worker', 'proxy', 'property-defs-rs', 'replay-capture'],
        disabled: ['livestream', 'cymbal', 'cymbal-resolution', 'temporal-ui', 'temporal-admin-tools'],
        memoryLimits: { clickhouse: 2 * 1024 ** 3, elasticsearch: 512 * 1024 ** 2 },
      })
  })

  it('changes nothing on a re-run, says so, and never touches docker-compose.local.yml', async () => {
    const local = path.join(stack, 'docker-compose.local.yml')
    fs.writeFileSync(local, 'services:\n  web:\n    environment:\n      MINE: "1"\n')
    // The first run after it appears adds it to COMPOSE_FILE, so hand-run compose commands use it too.
    const first = await run(dir)
    expect(first.stdout).toMatch(/; changed: \.env\n/)
    expect(fs.readFileSync(path.join(stack, '.env'), 'utf8')).toContain(
      'COMPOSE_FILE=docker-compose.yml:docker-compose.override.yml:docker-compose.local.yml\n',
    )
    expect(loadStack(stack)?.services.web?.environment?.MINE ?? '1').toBe('1')
    const before = mtimes(stack)
    const r = await run(dir)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/is up to date \(PostHog v1 .*\); nothing changed/)
    expectNoSecrets(dir, r)
    expect(mtimes(stack)).toEqual(before)
    expect(fs.readFileSync(local, 'utf8')).toContain('MINE')
  })

  it('moves the checkout to a new POSTHOG_APP_TAG in place', async () => {
    const marker = path.join(stack, 'posthog', '.git', 'homelab-test-marker')
    fs.writeFileSync(marker, 'same clone')
    const r = await run(dir, [], { POSTHOG_APP_TAG: 'v2' })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/changed: posthog\/, \.env, posthog-version\.json$/m)
    expect(fs.existsSync(marker)).toBe(true)
    expect(git(['rev-parse', 'HEAD'], { cwd: path.join(stack, 'posthog') })).toBe(repo.tags.v2)
    expect(fs.readFileSync(path.join(stack, 'posthog/docker/kafka/topics.txt'), 'utf8')).toContain(
      'logs_ingestion',
    )
    expect(fs.readdirSync(stack).filter((f) => f.includes('broken'))).toEqual([])
    expectNoSecrets(dir, r)
  })

  it('accepts latest and a 40-hex commit', async () => {
    let r = await run(dir, [], { POSTHOG_APP_TAG: 'latest' })
    expect(r.code).toBe(0)
    expect(git(['rev-parse', 'HEAD'], { cwd: path.join(stack, 'posthog') })).toBe(repo.head)
    r = await run(dir, [], { POSTHOG_APP_TAG: repo.commits[5]! })
    expect(r.code).toBe(0)
    expect(git(['rev-parse', 'HEAD'], { cwd: path.join(stack, 'posthog') })).toBe(repo.commits[5])
  })

  it('moves a foreign checkout aside, never deleting it, and fetches anew', async () => {
    const checkout = path.join(stack, 'posthog')
    git(['remote', 'set-url', 'origin', 'https://example.invalid/other.git'], { cwd: checkout })
    let r = await run(dir)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/moved it aside to .*posthog\.broken-/)
    let aside = fs.readdirSync(stack).filter((f) => f.startsWith('posthog.broken-'))
    expect(aside).toHaveLength(1)
    expect(git(['config', 'remote.origin.url'], { cwd: path.join(stack, aside[0]!) })).toContain(
      'example.invalid',
    )

    fs.rmSync(checkout, { recursive: true })
    fs.mkdirSync(checkout)
    fs.writeFileSync(path.join(checkout, 'my-notes.txt'), 'keep me')
    r = await run(dir)
    expect(r.code).toBe(0)
    aside = fs.readdirSync(stack).filter((f) => f.startsWith('posthog.broken-'))
    expect(aside).toHaveLength(2)
    expect(aside.some((a) => fs.existsSync(path.join(stack, a, 'my-notes.txt')))).toBe(true)
    expect(git(['rev-parse', 'HEAD'], { cwd: checkout })).toBe(repo.tags.v1)
  })
})

describe('prepare', () => {
  it('ends an unreachable repository in one line, exit 1, after retries', async () => {
    const d = project('offline')
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const r = await run(d, ['--no-geoip'], { POSTHOG_REPO_URL: `http://127.0.0.1:${port}/posthog.git` })
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(
      /^prepare: error: (fetching|looking up) v1 from .* failed after 2 attempts: .*; check the network/,
    )
    expect(r.stdout).toMatch(/network error .* retrying/)
    expectNoSecrets(d, r)
  })

  it('never overwrites a mounted file changed by hand', async () => {
    const d = project('edited')
    expect((await run(d, ['--no-geoip'])).code).toBe(0)
    const users = path.join(d, 'stack/posthog/docker/clickhouse/users.xml')
    fs.writeFileSync(users, '<clickhouse><users><me/></users></clickhouse>\n')
    const r = await run(d, ['--no-geoip'], { POSTHOG_APP_TAG: 'v2' })
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(
      /users\.xml was changed by hand; move your change to STACK_DIR\/docker-compose\.local\.yml/,
    )
    expect(fs.readFileSync(users, 'utf8')).toContain('<me/>')
    expectNoSecrets(d, r)
  })

  it('waits for no one: a stack locked by a running step is left alone (exit 1)', async () => {
    const d = project('locked')
    const lock = path.join(d, 'stack', '.lock')
    fs.mkdirSync(lock, { recursive: true })
    fs.writeFileSync(
      path.join(lock, 'owner.json'),
      JSON.stringify({ pid: process.pid, started: 'now', command: 'up' }),
    )
    const r = await run(d, ['--no-geoip'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/another run holds the lock .*\.lock \(pid \d+/)
    expect(fs.readdirSync(path.join(d, 'stack'))).toEqual(['.lock'])
    expectNoSecrets(d, r)
  })

  it('reports a ref the repository does not have with exit 2', async () => {
    const d = project('noref')
    const r = await run(d, ['--no-geoip'], { POSTHOG_APP_TAG: 'v999' })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/POSTHOG_APP_TAG=v999 does not exist/)
    expectNoSecrets(d, r)
  })

  it('refuses a bad .env with exit 2 and writes nothing', async () => {
    const d = project('bad')
    const text = fs
      .readFileSync(path.join(ROOT, '.env.example'), 'utf8')
      .replace('POSTHOG_PROXY_HTTP_PORT=18000', 'POSTHOG_PROXY_HTTP_PORT=99999')
    fs.writeFileSync(path.join(d, '.env'), text)
    const r = await run(d)
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/POSTHOG_PROXY_HTTP_PORT/)
    expect(fs.readFileSync(path.join(d, '.env'), 'utf8')).toBe(text)
    expect(fs.existsSync(path.join(d, 'stack'))).toBe(false)
  })

  it('refuses an emptied secret on a stack started with secrets (exit 2) before generating a new one', async () => {
    const d = project('emptied')
    const text = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8')
    fs.writeFileSync(path.join(d, '.env'), text)
    fs.mkdirSync(path.join(d, 'stack'))
    fs.writeFileSync(path.join(d, 'stack', 'secrets.sha256.json'), '{}\n')
    const r = await run(d, ['--no-geoip'])
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/POSTHOG_SECRET and ENCRYPTION_SALT_KEYS are empty .*--accept-new-secrets/)
    expect(fs.readFileSync(path.join(d, '.env'), 'utf8')).toBe(text)
    expect(fs.readdirSync(path.join(d, 'stack'))).toEqual(['secrets.sha256.json'])
  })

  it('refuses to switch off a service the stack cannot run without, before writing STACK_DIR files', async () => {
    const d = project('refuse')
    const r = await run(d, ['--no-geoip'], { DISABLED_SERVICES: 'web' })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/DISABLED_SERVICES switches off web, which PostHog cannot run without/)
    expect(fs.existsSync(path.join(d, 'stack', 'docker-compose.override.yml'))).toBe(false)
    expectNoSecrets(d, r)
  })

  it('downloads GeoLite2 (brotli) once when reachable', async () => {
    const mmdb = Buffer.concat([
      Buffer.from('fake tree data'),
      Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1'),
    ])
    let hits = 0
    const geo = http.createServer((_req, res) => {
      hits++
      res.end(brotliCompressSync(mmdb))
    })
    await new Promise<void>((resolve) => geo.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(geo.address() as AddressInfo).port}/`
    try {
      const d = project('geo')
      let r = await run(d, [], { GEOIP_URL: url })
      expect(r.code).toBe(0)
      expect(fs.readFileSync(path.join(d, 'stack/share/GeoLite2-City.mmdb'))).toEqual(mmdb)
      expect(
        JSON.parse(fs.readFileSync(path.join(d, 'stack/share/GeoLite2-City.json'), 'utf8')).date,
      ).toMatch(/^\d{4}-\d\d-\d\d$/)
      r = await run(d, [], { GEOIP_URL: url })
      expect(r.stdout).toMatch(/nothing changed/)
      expect(hits).toBe(1)
      expectNoSecrets(d, r)
    } finally {
      geo.close()
    }
  })
})
