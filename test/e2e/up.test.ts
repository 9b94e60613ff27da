// up as a black box: the fake docker on PATH, a local HTTP server standing in for Caddy's
// /_health on POSTHOG_PROXY_HTTP_PORT, and prepare fetching from a PostHog-like repository served
// over real smart HTTP (test/helpers/fixture-repo.ts).
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fakeDockerStateFile, scratchDir } from '../helpers/common.ts'
import { expectSafeStack, loadStack } from '../helpers/compose-model.ts'
import { makePosthogRepo, type RepoServer, serveRepo } from '../helpers/fixture-repo.ts'
import { COMPOSE_CONFIG, needShared } from '../helpers/shared.ts'
import {
  type HealthServer,
  healthServer,
  makeProject,
  type Project,
  runOnTty,
  runScript,
  SECRET,
  secretsIn,
  startScript,
  usualStart,
} from '../helpers/stack-env.ts'

// The data stores of the served compose files (test/helpers/hobby-fixture.ts, current shape), in
// start order, spelled out here on purpose: importing lib/stack/startup's DATA_STORES would make the
// expected start order repeat whatever lib says.
const STORES = [
  'db',
  'redis7',
  'clickhouse',
  'zookeeper',
  'kafka',
  'objectstorage',
  'seaweedfs',
  'elasticsearch',
]
const SERVICES = [
  ...STORES,
  'web',
  'proxy',
  'worker',
  'plugins',
  'kafka-init',
  'capture',
  'feature-flags',
  'replay-capture',
]
const GiB = 1024 ** 3

let repoDir: string
let repo: RepoServer
/** The same kind of repository with an older PostHog's compose files (no env_file, MinIO, ...). */
let oldRepo: RepoServer
/** Every project and health server made, cleaned up at the end (tests run concurrently). */
const cleanups: (() => unknown)[] = []

beforeAll(async () => {
  repoDir = scratchDir('up-repo-')
  makePosthogRepo(path.join(repoDir, 'posthog.git'), { commits: 3, unrelatedFiles: 20 })
  repo = await serveRepo(path.join(repoDir, 'posthog.git'))
  makePosthogRepo(path.join(repoDir, 'old.git'), { commits: 3, unrelatedFiles: 20, compose: 'old' })
  oldRepo = await serveRepo(path.join(repoDir, 'old.git'))
})
afterAll(async () => {
  for (const c of cleanups) await c()
  await repo?.close()
  await oldRepo?.close()
  fs.rmSync(repoDir, { recursive: true, force: true })
})

function stackScenario(extra: object = {}) {
  return {
    services: Object.fromEntries(SERVICES.map((s) => [s, { state: 'created' }])),
    logs: { web: ['Operations to perform:', 'Running migrations:', 'Applying posthog.0999_example... OK'] },
    ...extra,
  }
}

/** A project whose .env (or environment, without .env) points at the served repo and a health stand-in. */
async function setup(
  opts: { withEnv?: boolean; scenario?: object; mode?: typeof usualStart; realCompose?: boolean } = {},
): Promise<Project & { health: HealthServer }> {
  const p = makeProject({ withEnv: opts.withEnv === false ? false : {} })
  const health = await healthServer(p, opts.mode ?? usualStart)
  cleanups.push(
    () => health.close(),
    () => p.cleanup(),
  )
  p.env.POSTHOG_REPO_URL = repo.url
  p.env.POSTHOG_PROXY_HTTP_PORT = String(health.port)
  p.env.HOMELAB_RETRY_BACKOFF = '10ms'
  p.env.HOMELAB_SETTLE = '300ms'
  // The fake docker loads the project with the real Compose loader, as docker compose does.
  if (opts.realCompose && COMPOSE_CONFIG) p.env.FAKE_COMPOSE_CONFIG = COMPOSE_CONFIG
  p.scenario(opts.scenario ?? stackScenario())
  return Object.assign(p, { health })
}

const ups = (p: Project) =>
  p
    .calls()
    .filter((c) => c[0] === 'compose' && c[1] === 'up')
    .map((c) => c.slice(3).join(' '))

const oneLine = (text: string) => text.trim().split('\n').length === 1

describe.concurrent('up: pre-flight failures exit 1 with one line and a fix, and touch nothing', () => {
  const cases: [string, (p: Project) => void, RegExp][] = [
    [
      'no docker CLI',
      (p) => {
        p.env.DOCKER_BIN = path.join(p.dir, 'no-such-docker')
      },
      /docker command .* not found.*fix: install Docker Desktop/,
    ],
    [
      'daemon down',
      (p) => p.scenario({ daemon: false }),
      /daemon does not answer: Cannot connect.*fix: start Docker/,
    ],
    [
      'Compose 2.20',
      (p) => p.scenario({ composeVersion: '2.20.2' }),
      /Compose 2\.20\.2 is too old.*fix: update/,
    ],
    [
      'too little memory',
      (p) => p.scenario({ memTotal: 4 * GiB }),
      /Docker can use 4\.0 GiB.*needs about 7\.\d GiB.*fix: raise Docker Desktop's memory limit/,
    ],
    [
      'low disk',
      (p) => {
        p.env.HOMELAB_MIN_FREE_DISK_GB = '100000000'
      },
      /GiB free on the filesystem of .*fix: free at least/,
    ],
  ]
  it.each(cases)('%s', async (_name, arrange, expected) => {
    const p = await setup({ withEnv: false })
    arrange(p)
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code, res.stderr).toBe(1)
    expect(oneLine(res.stderr), res.stderr).toBe(true)
    expect(res.stderr).toMatch(expected)
    expect(fs.existsSync(p.envFile)).toBe(false)
    expect(fs.existsSync(p.stackDir)).toBe(false)
    expect(ups(p)).toEqual([])
    expect(secretsIn(res, p)).toEqual([])
  })

  it('reports every failed check, one line each', async () => {
    const p = await setup({ withEnv: false })
    p.scenario({ daemon: false, composeVersion: '2.20.2' })
    p.env.HOMELAB_MIN_FREE_DISK_GB = '100000000'
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code).toBe(1)
    expect(res.stderr.trim().split('\n')).toHaveLength(3)
    expect(fs.existsSync(p.envFile)).toBe(false)
  })

  it('bad .env values exit 2 with one line before anything else', async () => {
    const p = await setup()
    fs.appendFileSync(p.envFile, 'POSTHOG_PROXY_HTTP_PORT=70000\n')
    delete p.env.POSTHOG_PROXY_HTTP_PORT
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code).toBe(2)
    expect(oneLine(res.stderr)).toBe(true)
    expect(res.stderr).toMatch(/POSTHOG_PROXY_HTTP_PORT must be a port number/)
    expect(p.calls()).toEqual([])
  })
})

describe.concurrent('up: the ordered start', () => {
  it('creates .env (0600), starts data stores, then web alone until migrated, then everything; records fingerprints', async () => {
    const p = await setup({ withEnv: false })
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code, res.stderr).toBe(0)
    expect(fs.statSync(p.envFile).mode & 0o777).toBe(0o600)
    expect(fs.readFileSync(p.envFile, 'utf8')).toMatch(/^POSTHOG_SECRET=[0-9a-f]{56}$/m)
    expect(ups(p)).toEqual([STORES.join(' '), '--no-deps web proxy', '--no-build'])
    expect(p.health.firstReadyAt()).toBeDefined()
    expect(p.health.allStartedBeforeReady()).toBe(false)
    expect(res.stdout).toMatch(/created \.env \(mode 0600\)/)
    expect(res.stdout).toMatch(/PostHog is healthy: http:\/\/127\.0\.0\.1:\d+/)
    expect(res.stdout).toMatch(/To go public: set DOMAIN/)
    expect(fs.existsSync(path.join(p.stackDir, 'secrets.sha256.json'))).toBe(true)
    expect(fs.existsSync(path.join(p.stackDir, '.lock'))).toBe(false)
    expect(secretsIn(res, p)).toEqual([])
  })

  it('retries a failing docker compose up -d', async () => {
    const p = await setup({
      scenario: stackScenario({
        rules: [
          {
            match: '^compose up -d --no-build$',
            exitCode: 1,
            stderr: 'Error response from daemon: Get "https://ghcr.io/v2/": net/http: TLS handshake timeout',
            times: 2,
          },
        ],
      }),
    })
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code, res.stderr).toBe(0)
    expect(ups(p).filter((u) => u === '--no-build')).toHaveLength(3)
    expect(res.stdout).toMatch(/TLS handshake timeout\); retry 1 of 2/)
    expect(secretsIn(res, p)).toEqual([])
  })

  it('gives up after 3 failed attempts with one line', async () => {
    const p = await setup({
      scenario: stackScenario({
        rules: [
          { match: '^compose up -d db', exitCode: 18, stderr: 'Error: pull access denied for postgres' },
        ],
      }),
    })
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code).toBe(1)
    expect(ups(p)).toHaveLength(3)
    expect(res.stderr).toMatch(/failed 3 times: Error: pull access denied for postgres; check the network/)
    expect(oneLine(res.stderr)).toBe(true)
  })

  it('on timeout names the service that keeps restarting, with its last log lines, and exits 1', async () => {
    const p = await setup({
      mode: ({ webStarted }) =>
        webStarted ? { status: 503, body: 'Migrations are not up to date' } : { status: 502, body: '' },
      scenario: stackScenario({
        logs: {
          web: ['Running migrations:', 'django.db.utils.OperationalError: could not connect to server'],
        },
        rules: [
          {
            match: '^compose up -d --no-deps web proxy$',
            setState: {
              web: { state: 'restarting', exitCode: 1, restartCount: 4 },
              proxy: { state: 'running' },
            },
          },
        ],
      }),
    })
    const res = await runScript('up', ['--no-geoip', '--timeout', '2s'], p)
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/web did not finish its migrations within 2s \(last \/_health: 503 Migrations/)
    expect(res.stderr).toMatch(/web keeps restarting/)
    expect(res.stderr).toContain('django.db.utils.OperationalError: could not connect to server')
    // The doctor's findings follow, limited to the services started so far.
    expect(res.stderr).toMatch(/doctor: \d+ problems? found/)
    expect(res.stderr).not.toMatch(/\[plugins\]/)
    expect(res.stderr).not.toMatch(/^proxy /m)
    expect(ups(p)).not.toContain('--no-build')
    expect(secretsIn(res, p)).toEqual([])
  })

  it('never overlaps: a second run while one runs exits 1 naming the holder', async () => {
    const p = await setup({ mode: () => ({ status: 502, body: '' }) })
    const first = startScript('up', ['--no-geoip', '--timeout', '20s'], p)
    const lock = path.join(p.stackDir, '.lock', 'owner.json')
    for (let i = 0; i < 200 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50))
    const second = await runScript('up', ['--no-geoip'], p)
    first.kill()
    await first.done
    expect(second.code).toBe(1)
    expect(oneLine(second.stderr)).toBe(true)
    expect(second.stderr).toMatch(new RegExp(`another run holds the lock .*\\(pid ${first.pid}, since`))
  })

  it('re-runs without changes, and refuses changed secrets after a healthy start (exit 2) unless --accept-new-secrets', async () => {
    const p = await setup()
    expect((await runScript('up', ['--no-geoip'], p)).code).toBe(0)
    // A re-run with nothing to change leaves .env and the fingerprints untouched.
    const fingerprints = path.join(p.stackDir, 'secrets.sha256.json')
    const before = [fs.statSync(p.envFile).mtimeMs, fs.statSync(fingerprints).mtimeMs]
    const again = await runScript('up', ['--no-geoip'], p)
    expect(again.code, again.stderr).toBe(0)
    expect([fs.statSync(p.envFile).mtimeMs, fs.statSync(fingerprints).mtimeMs]).toEqual(before)
    const other = 'd1ffe4e7'.repeat(7)
    fs.writeFileSync(p.envFile, fs.readFileSync(p.envFile, 'utf8').replace(SECRET, other))
    const refused = await runScript('up', ['--no-geoip'], p)
    expect(refused.code).toBe(2)
    expect(oneLine(refused.stderr)).toBe(true)
    expect(refused.stderr).toMatch(/POSTHOG_SECRET differ.*--accept-new-secrets/)
    const accepted = await runScript('up', ['--no-geoip', '--accept-new-secrets'], p)
    expect(accepted.code, accepted.stderr).toBe(0)
    for (const r of [refused, accepted]) {
      expect(r.stdout + r.stderr).not.toContain(other)
      expect(secretsIn(r, p)).toEqual([])
    }
  })

  it('shows a live progress line on a terminal', async () => {
    const slow: typeof usualStart = (ctx) =>
      ctx.sinceWeb < 12 ? usualStart({ ...ctx, sinceWeb: 0 }) : usualStart(ctx)
    const p = await setup({ mode: slow })
    const res = await runOnTty('up', ['--no-geoip'], p)
    expect(res.code, res.stdout).toBe(0)
    expect(res.stdout).toMatch(/\r\x1b\[2Kwaiting for web's migrations: \d+s.*\/_health: (502|503)/)
    expect(res.stdout).toMatch(/PostHog is healthy/)
    expect(secretsIn(res, p)).toEqual([])
  })
})

/** What the fake docker created and pulled (its state file). */
function fakeState(p: Project): { created?: string[]; pulled?: string[] } {
  return JSON.parse(fs.readFileSync(fakeDockerStateFile(p.scenarioFile), 'utf8'))
}

describe.concurrent('up: healthy means the whole stack', () => {
  it("fails when /_health answers ok but a service crash-loops, with the doctor's findings for it", async () => {
    const p = await setup({
      scenario: stackScenario({
        services: {
          ...stackScenario().services,
          plugins: { state: 'created', onStart: { state: 'restarting', exitCode: 1, restartCount: 5 } },
        },
        logs: { plugins: ['Error: connect ECONNREFUSED 127.0.0.1:6379'] },
      }),
    })
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code, res.stdout).toBe(1)
    expect(res.stderr).toMatch(
      /^up: \/_health answers ok, but not every service runs: plugins keeps restarting \(5 restarts, last exit 1\)$/m,
    )
    expect(res.stderr).toContain('Error: connect ECONNREFUSED 127.0.0.1:6379')
    expect(res.stderr).toMatch(/\[plugins\] a Node service tries Redis on 127\.0\.0\.1/)
    expect(res.stderr).not.toMatch(/\[web\]/)
    expect(fs.existsSync(path.join(p.stackDir, 'secrets.sha256.json'))).toBe(true)
    expect(secretsIn(res, p)).toEqual([])
  })

  it('waits for a service whose healthcheck is still starting, and fails one that turns unhealthy', async () => {
    const p = await setup({
      scenario: stackScenario({
        services: {
          ...stackScenario().services,
          clickhouse: { state: 'created', onStart: { health: 'starting' } },
        },
        rules: [
          {
            match: '^inspect ',
            times: 2,
            setState: { clickhouse: { state: 'running', health: 'unhealthy' } },
          },
        ],
      }),
    })
    const res = await runScript('up', ['--no-geoip'], p)
    expect(res.code, res.stdout).toBe(1)
    expect(res.stderr).toMatch(/not every service runs: clickhouse is running but unhealthy/)
  })

  it('probes the capture path through the proxy after a healthy start, and fails when capture is dead', async () => {
    const p = await setup()
    p.health.routes['/e/'] = 502
    p.health.routes['/batch'] = 502
    const res = await runScript('up', ['--no-geoip', '--timeout', '3s'], p)
    expect(res.code, res.stdout).toBe(1)
    expect(res.stderr).toMatch(
      /^up: \/_health answers ok and every service runs, but the capture path does not: \/e\/ \(502\), \/batch \(502\)$/m,
    )
    expect(p.health.requests).toEqual(
      expect.arrayContaining(['POST /e/', 'POST /i/v0/e/', 'POST /flags', 'GET /']),
    )
    const ok = await setup()
    expect((await runScript('up', ['--no-geoip'], ok)).code).toBe(0)
    expect(ok.health.requests).toEqual(expect.arrayContaining(['POST /e/', 'POST /batch', 'GET /']))
  })

  it('refuses to start the existing volumes with secrets this STACK_DIR has no record of (exit 2)', async () => {
    const p = await setup({
      withEnv: false,
      scenario: stackScenario({ volumes: ['postgres-data', 'clickhouse-data'] }),
    })
    const refused = await runScript('up', ['--no-geoip'], p)
    expect(refused.code).toBe(2)
    expect(oneLine(refused.stderr)).toBe(true)
    expect(refused.stderr).toMatch(
      /Docker already has this stack's volumes \(posthog_clickhouse-data, posthog_postgres-data\), but .* no record of the secrets/,
    )
    expect(fs.existsSync(p.envFile)).toBe(false)
    expect(ups(p)).toEqual([])
    const accepted = await runScript('up', ['--no-geoip', '--accept-new-secrets'], p)
    expect(accepted.code, accepted.stderr).toBe(0)
  })
})

describe.skipIf(!needShared('tools/linux-amd64/compose-config', "up's checks with the real Compose loader"))(
  'up with the real Compose loader behind the fake docker',
  () => {
    it('runs the enabled services only: switched-off ones are neither pulled nor created; hand-run compose finds the stack', async () => {
      const p = await setup({ realCompose: true })
      const res = await runScript('up', ['--no-geoip'], p)
      expect(res.code, res.stderr).toBe(0)
      expect(res.stderr).toBe('')
      expect(ups(p).at(-1)).toBe('--no-build')
      const created = fakeState(p).created ?? []
      expect(created).toEqual(
        expect.arrayContaining(['web', 'worker', 'plugins', 'property-defs-rs', 'replay-capture']),
      )
      for (const off of [
        'livestream',
        'cymbal',
        'cymbal-resolution',
        'temporal-ui',
        'temporal-admin-tools',
        'asyncmigrationscheck',
      ])
        expect(created, off).not.toContain(off)
      expect(res.stdout).toMatch(/^switched off: live-events off/m)
      const stackEnv = fs.readFileSync(path.join(p.stackDir, '.env'), 'utf8')
      expect(stackEnv).toMatch(/^COMPOSE_PROJECT_NAME=posthog$/m)
      expect(stackEnv).toMatch(/^COMPOSE_FILE=docker-compose\.yml:docker-compose\.override\.yml$/m)
      expectSafeStack(loadStack(p.stackDir)!, {
        proxyPort: p.health.port,
        disabled: ['livestream', 'cymbal'],
      })
    })

    it('runs an older PostHog (no env_file, MinIO, redis + redis7) with every port on 127.0.0.1', async () => {
      const p = await setup({ realCompose: true })
      p.env.POSTHOG_REPO_URL = oldRepo.url
      const res = await runScript('up', ['--no-geoip'], p)
      expect(res.code, res.stderr).toBe(0)
      expect(fs.existsSync(path.join(p.stackDir, '.env.services'))).toBe(false)
      expect(fakeState(p).created).toEqual(
        expect.arrayContaining(['redis', 'redis7', 'cyclotron-janitor', 'objectstorage']),
      )
      expectSafeStack(loadStack(p.stackDir)!, {
        proxyPort: p.health.port,
        enabled: ['redis', 'cyclotron-janitor'],
        disabled: ['livestream', 'temporal-ui'],
      })
    })
  },
)
