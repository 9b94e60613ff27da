// scripts/health.mts as a black box: real local HTTP/HTTPS servers, fake docker, a webhook receiver.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectNoSecrets } from '../helpers/common.ts'
import {
  bundled,
  type HealthServer,
  type LeafCert,
  makeCa,
  makeLeaf,
  makeStackProject,
  ROOT,
  run,
  SECRETS,
  SERVICES,
  type StackProject,
  startHealthServer,
  startHttpsHealthServer,
  startWebhook,
  type TestCa,
  WEBHOOK_TOKEN,
  type Webhook,
} from '../helpers/monitor-env.ts'

// The bundle schedule.mts installs (dist/health.mjs is built the same way).
let HEALTH: string

function health(p: StackProject, args: string[] = [], env: Record<string, string> = {}, timeoutMs = 30_000) {
  return run(HEALTH, args, { cwd: p.dir, env: { ...p.env, ...env }, timeoutMs, tsx: false })
}

let local: HealthServer
let webhook: Webhook
let ca: TestCa
const leaves: Record<number, LeafCert> = {}

beforeAll(async () => {
  HEALTH = await bundled(path.join(ROOT, 'scripts/health.mts'))
  local = await startHealthServer('ok')
  webhook = await startWebhook()
  ca = makeCa()
  for (const days of [30, 10, 2]) leaves[days] = makeLeaf(ca, days)
})
afterAll(async () => {
  await local.close()
  await webhook.close()
})

describe('health', () => {
  it('all green: OK, exit 0, four docker calls, no notification on a first OK run', async () => {
    local.mode = 'ok'
    const p = makeStackProject({ env: { HEALTH_WEBHOOK_URL: webhook.url } })
    const before = webhook.received.length
    const r = await health(p, ['--local-url', local.url])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe('POSTHOG OK - 4 checks ok')
    expect(lines.slice(1)).toEqual([
      `OK local: ${local.url} answers ok`,
      'OK app: GET / 302 (web answers)',
      'OK services: 6 running',
      expect.stringMatching(/^OK disk: [\d.]+ GiB free of [\d.]+ GiB \(\d+ %\) on .* and STACK_DIR$/),
    ])
    // The merged model (which services run), the containers, and Docker's data directory.
    expect(p.calls().sort()).toEqual([
      'compose config --format json',
      'compose ps --all --format json',
      'info --format {{json .}}',
      expect.stringMatching(/^inspect posthog-db-1 /),
    ])
    expect(webhook.received.length).toBe(before)
    expectNoSecrets(r, SECRETS)
    // Later runs inspect the containers seen last time: one docker call.
    const again = await health(p, ['--local-url', local.url])
    expect(again.code).toBe(0)
    expect(p.calls().slice(4)).toEqual([expect.stringMatching(/^inspect posthog-db-1 /)])
  })

  it('--json prints the same report for machines', async () => {
    const p = makeStackProject()
    const r = await health(p, ['--local-url', local.url, '--json'])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report).toMatchObject({ label: 'POSTHOG', status: 'OK' })
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(['local', 'app', 'services', 'disk'])
  })

  it('CRITICAL (exit 2) on migrations pending and on an exited service; notifies on changes only', async () => {
    const p = makeStackProject({ env: { HEALTH_WEBHOOK_URL: webhook.url } })
    const start = webhook.received.length
    local.mode = 'migrating'
    const r1 = await health(p, ['--local-url', local.url])
    expect(r1.code).toBe(2)
    expect(r1.stdout.split('\n')[0]).toBe(
      `POSTHOG CRITICAL - local: ${local.url} answers 503 Migrations are not up to date`,
    )
    expect(r1.stderr).toContain('notification sent (state changed)')
    expect(webhook.received.length).toBe(start + 1)
    const sent = JSON.parse(webhook.received.at(-1)!.body)
    expect(sent).toMatchObject({ status: 'CRITICAL', reason: 'changed', source: 'posthog-homelab' })
    expect(webhook.received.at(-1)!.headers['content-type']).toBe('application/json')

    // Still critical (now a service too): no new notification.
    p.scenario({
      services: {
        db: {},
        redis7: {},
        web: {},
        worker: { state: 'exited', exitCode: 1 },
        plugins: {},
        proxy: {},
      },
    })
    const r2 = await health(p, ['--local-url', local.url])
    expect(r2.code).toBe(2)
    expect(r2.stdout).toContain('CRITICAL services: worker exited (1)')
    expect(webhook.received.length).toBe(start + 1)

    // Recovery: one notification back to OK.
    local.mode = 'ok'
    p.scenario({ services: { db: {}, redis7: {}, web: {}, worker: {}, plugins: {}, proxy: {} } })
    const r3 = await health(p, ['--local-url', local.url])
    expect(r3.code).toBe(0)
    expect(webhook.received.length).toBe(start + 2)
    expect(JSON.parse(webhook.received.at(-1)!.body)).toMatchObject({ status: 'OK', reason: 'changed' })
    for (const r of [r1, r2, r3]) expectNoSecrets(r, SECRETS)
    for (const w of webhook.received) expect(w.body).not.toContain(WEBHOOK_TOKEN)
  })

  it('reminds while critical at most every HEALTH_REMIND_HOURS, in plain text when asked', async () => {
    const p = makeStackProject({
      env: { HEALTH_WEBHOOK_URL: webhook.url, HEALTH_WEBHOOK_FORMAT: 'text', HEALTH_REMIND_HOURS: '2' },
    })
    local.mode = 'error'
    const start = webhook.received.length
    await health(p, ['--local-url', local.url])
    await health(p, ['--local-url', local.url])
    expect(webhook.received.length).toBe(start + 1)
    const first = webhook.received.at(-1)!
    expect(first.headers['content-type']).toMatch(/^text\/plain/)
    expect(first.body).toMatch(/^POSTHOG CRITICAL on \S+ - local: .* answers 500/)
    expect(first.headers.title).toBe('POSTHOG CRITICAL')

    // Pretend the last notice went out 3 hours ago: the next run reminds, the one after does not.
    const state = JSON.parse(fs.readFileSync(p.stateFile, 'utf8'))
    state.lastNotified.time = new Date(Date.now() - 3 * 3_600_000).toISOString()
    fs.writeFileSync(p.stateFile, JSON.stringify(state))
    const r = await health(p, ['--local-url', local.url])
    expect(r.stderr).toContain('notification sent (reminder)')
    await health(p, ['--local-url', local.url])
    expect(webhook.received.length).toBe(start + 2)
    expect(webhook.received.at(-1)!.body.split('\n')[0]).toContain('POSTHOG CRITICAL (still)')
    local.mode = 'ok'
  })

  it('checks https://DOMAIN/_health with TLS verified and warns before the certificate expires', async () => {
    const cases: [number, number, RegExp][] = [
      [30, 0, /^OK certificate: expires in (29|30) days/m],
      [10, 1, /^WARNING certificate: expires in (9|10) days/m],
      [2, 2, /^CRITICAL certificate: expires in (1|2) days|^CRITICAL certificate: expires in \d+ hours/m],
    ]
    for (const [days, code, line] of cases) {
      const pub = await startHttpsHealthServer(leaves[days]!)
      try {
        const p = makeStackProject({ env: { DOMAIN: 'ph.example.com' } })
        const r = await health(p, ['--local-url', local.url, '--public-url', pub.url, '--ca-file', ca.caFile])
        expect(r.stdout).toMatch(line)
        expect(r.stdout).toContain(`OK public: ${pub.url} answers ok`)
        expect(r.code).toBe(code)
      } finally {
        await pub.close()
      }
    }
  })

  it('fails the public check when the certificate is not trusted', async () => {
    const pub = await startHttpsHealthServer(leaves[30]!)
    try {
      const p = makeStackProject()
      const r = await health(p, ['--local-url', local.url, '--public-url', pub.url])
      expect(r.code).toBe(2)
      expect(r.stdout).toMatch(/^CRITICAL public: .*(self-signed|unable to verify|local issuer)/m)
    } finally {
      await pub.close()
    }
  })

  it('bounds the whole run when a server hangs', async () => {
    const hung = await startHealthServer('hang')
    try {
      const p = makeStackProject()
      const r = await health(p, ['--local-url', hung.url, '--timeout', '2s'], {}, 20_000)
      expect(r.code).toBe(2)
      expect(r.stdout).toMatch(/^CRITICAL local: .* no answer within [\d.]+ s/m)
      expect(r.ms).toBeLessThan(10_000) // a bound, not a benchmark: without it this run never ends
    } finally {
      await hung.close()
    }
  })

  it('a run that overlaps a running one reports UNKNOWN (exit 3) and leaves the state alone', async () => {
    const hung = await startHealthServer('hang')
    try {
      const p = makeStackProject()
      const first = health(p, ['--local-url', hung.url, '--timeout', '4s'], {}, 20_000)
      const lock = `${p.stateFile}.lock`
      for (let i = 0; i < 100 && !fs.existsSync(path.join(lock, 'owner.json')); i++)
        await new Promise((r) => setTimeout(r, 50))
      const second = await health(p, ['--local-url', local.url])
      expect(second.code).toBe(3)
      expect(second.stdout.split('\n')[0]).toMatch(
        /^POSTHOG UNKNOWN - lock: another health run is still running/,
      )
      expect((await first).code).toBe(2)
      expect(fs.existsSync(lock)).toBe(false)
      const third = await health(p, ['--local-url', local.url])
      expect(third.code).toBe(0)
    } finally {
      await hung.close()
    }
  })

  it('WARNING (exit 1) when a restart count grows between runs', async () => {
    const p = makeStackProject()
    const services = { db: {}, redis7: {}, web: {}, worker: { restartCount: 1 }, plugins: {}, proxy: {} }
    p.scenario({ services })
    expect((await health(p, ['--local-url', local.url])).code).toBe(0)
    p.scenario({ services: { ...services, worker: { restartCount: 3 } } })
    const r = await health(p, ['--local-url', local.url])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('WARNING services: worker restarted 2 times since the last run')
    expect((await health(p, ['--local-url', local.url])).code).toBe(0)
  })

  it('--heal restarts exited and unhealthy services once per hour and reports it', async () => {
    const p = makeStackProject()
    p.scenario({
      startOnUp: false,
      services: {
        db: { health: 'unhealthy' },
        redis7: {},
        web: {},
        worker: { state: 'exited', exitCode: 1 },
        plugins: {},
        proxy: {},
      },
    })
    const r1 = await health(p, ['--local-url', local.url, '--heal'])
    expect(r1.code).toBe(2)
    expect(r1.stdout).toContain('worker exited (1) (restarted by --heal)')
    expect(r1.stdout).toContain('WARNING heal worker: restarted (docker compose restart)')
    expect(r1.stdout).toContain('WARNING heal db: restarted (docker compose restart)')
    expect(
      p
        .calls()
        .filter((c) => c.startsWith('compose restart'))
        .sort(),
    ).toEqual(['compose restart db', 'compose restart worker'])
    const r2 = await health(p, ['--local-url', local.url, '--heal'])
    expect(r2.stdout).toMatch(/WARNING heal worker: not restarted: already restarted at /)
    expect(p.calls().filter((c) => c.startsWith('compose restart'))).toHaveLength(2)
    const state = JSON.parse(fs.readFileSync(p.stateFile, 'utf8'))
    expect(Object.keys(state.heals).sort()).toEqual(['db', 'worker'])
  })

  it('UNKNOWN when docker does not answer', async () => {
    const p = makeStackProject()
    p.scenario({ daemon: false })
    const r = await health(p, ['--local-url', local.url])
    expect(r.code).toBe(3)
    expect(r.stdout).toMatch(
      /^UNKNOWN services: docker does not answer: Cannot connect to the Docker daemon/m,
    )
  })

  it('a bad flag is UNKNOWN (exit 3) with one line saying why, never CRITICAL', async () => {
    const p = makeStackProject()
    const bad = async (args: string[], why: RegExp) => {
      const r = await health(p, args)
      expect(r.code, r.stdout + r.stderr).toBe(3)
      expect(r.stdout.split('\n')[0]).toMatch(why)
      expect(r.stderr).toBe('')
    }
    await bad(['--timeout', 'soon'], /^POSTHOG UNKNOWN - health: --timeout=soon is not a duration/)
    await bad(
      ['--timeout', '600h'],
      /^POSTHOG UNKNOWN - health: --timeout=600h is longer than a timer can wait/,
    )
    await bad(['--nope'], /^POSTHOG UNKNOWN - health: Unknown option '--nope'/)
    for (const flag of ['--local-url', '--public-url'])
      await bad([flag, '127.0.0.1:18000/_health'], new RegExp(`^POSTHOG UNKNOWN - health: ${flag}=`))
    const notPem = path.join(p.dir, 'not-a-ca.pem')
    fs.writeFileSync(notPem, 'hello\n')
    for (const file of [path.join(p.dir, 'missing-ca.pem'), notPem])
      await bad(['--ca-file', file], new RegExp(`^POSTHOG UNKNOWN - health: --ca-file ${file} `))
    const json = await health(p, ['--timeout', 'soon', '--json'])
    expect(json.code).toBe(3)
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: 'UNKNOWN',
      summary: expect.stringMatching(/^health: --timeout=soon/),
    })
  })

  it('a broken .env, a .env that is a directory, and a crash are UNKNOWN (exit 3)', async () => {
    const p = makeStackProject()
    fs.appendFileSync(p.envFile, 'POSTHOG_PROXY_HTTP_PORT=99999\n')
    const broken = await health(p, [])
    expect(broken.code).toBe(3)
    expect(broken.stdout.split('\n')[0]).toMatch(
      /^POSTHOG UNKNOWN - health: invalid .*POSTHOG_PROXY_HTTP_PORT must be a port/,
    )

    const dirAsEnv = path.join(p.dir, 'env-dir')
    fs.mkdirSync(dirAsEnv)
    const eisdir = await health(p, [], { HOMELAB_ENV_FILE: dirAsEnv })
    expect(eisdir.code).toBe(3)
    expect(eisdir.stdout.split('\n')[0]).toMatch(
      /^POSTHOG UNKNOWN - health: .*env-dir is a directory, not a file/,
    )

    // An exception that escapes the run (here: thrown from a timer once the script runs).
    const q = makeStackProject()
    const crash = path.join(q.dir, 'crash.mjs')
    fs.writeFileSync(
      crash,
      "const t = setInterval(() => { if (process.listenerCount('uncaughtException') > 0) { clearInterval(t); throw new TypeError('boom\\n    at frame (x.js:1:1)') } }, 5)\n",
    )
    const crashed = await health(q, ['--local-url', local.url], { NODE_OPTIONS: `--import ${crash}` })
    expect(crashed.code).toBe(3)
    expect(crashed.stdout.split('\n')[0]).toBe('POSTHOG UNKNOWN - health: boom at frame (x.js:1:1)')
    expect(crashed.stderr).not.toMatch(/^\s+at /m)
  })

  it('an unusable --state-file is reported as such, not as another run still running', async () => {
    const p = makeStackProject()
    const underAFile = path.join(p.envFile, 'state.json')
    const r1 = await health(p, ['--local-url', local.url, '--state-file', underAFile])
    expect(r1.code).toBe(3)
    expect(r1.stdout.split('\n')[0]).toMatch(
      /^POSTHOG UNKNOWN - state-file: .*\.env\/state\.json cannot be used \(ENOTDIR\): give --state-file a file in a folder this user can write$/,
    )
    expect(r1.stdout).not.toContain('another health run')
    // A folder where no lock can be made (/proc takes no new directories).
    if (process.platform === 'linux') {
      const r = await health(p, ['--local-url', local.url, '--state-file', '/proc/health-state.json'])
      expect(r.code).toBe(3)
      expect(r.stdout.split('\n')[0]).toBe(
        'POSTHOG UNKNOWN - state-file: no lock can be made beside /proc/health-state.json in /proc (ENOENT): give --state-file a file in a folder this user can write',
      )
    }
    const aDir = path.join(p.dir, 'a-dir')
    fs.mkdirSync(aDir)
    const r2 = await health(p, ['--local-url', local.url, '--state-file', aDir])
    expect(r2.code).toBe(3)
    expect(r2.stdout.split('\n')[0]).toMatch(/^POSTHOG UNKNOWN - state-file: .*a-dir is not a file/)
  })

  it('a hung docker and a hung webhook: one line everywhere, and the run ends within its limit', async () => {
    const hook = await startWebhook({ hang: true })
    try {
      const p = makeStackProject({ env: { HEALTH_WEBHOOK_URL: hook.url } })
      // Every docker call hangs (a daemon stuck on a full disk does that).
      p.scenario({ services: {}, rules: [{ match: '.', delayMs: 120_000 }] })
      fs.writeFileSync(
        p.stateFile,
        JSON.stringify({ version: 1, restartCounts: {}, heals: {}, containerNames: ['posthog-web-1'] }),
      )
      const text = await health(p, ['--local-url', local.url, '--timeout', '4s'], {}, 40_000)
      expect(text.code, text.stdout).toBe(3)
      const first = text.stdout.split('\n')[0]!
      expect(first).toMatch(/^POSTHOG UNKNOWN - services: docker does not answer: timed out after \d+ s/)
      expect(text.stdout + text.stderr).not.toMatch(/^\s+at |SIGTERM|AsyncLocalStorage/m)
      expect(text.stderr).toContain('notification not sent: the webhook did not answer in time')
      // The webhook got the same one-line summaries.
      const sent = JSON.parse(hook.received.at(-1)!.body)
      expect(sent.checks.every((c: { summary: string }) => !c.summary.includes('\n'))).toBe(true)
      expect(sent.summary).toBe(first.replace(/^POSTHOG UNKNOWN - /, ''))
      const json = await health(p, ['--local-url', local.url, '--timeout', '4s', '--json'], {}, 40_000)
      const report = JSON.parse(json.stdout)
      expect(report.status).toBe('UNKNOWN')
      for (const c of report.checks) expect(c.summary).not.toMatch(/\n|\bat \S+ \(/)
      // A bound, not a benchmark (bench/health-timeout.mts measures it): each hung docker call
      // would take 120 s, and the process ends before the harness's 40 s.
      expect(text.ms).toBeLessThan(30_000)
    } finally {
      await hook.close()
    }
  })

  it('probes the capture path: one check per enabled route group, CRITICAL when capture is dead', async () => {
    const services = ['db', 'web', 'proxy', 'capture', 'feature-flags', 'replay-capture', 'kafka-init']
    const p = makeStackProject({ services, env: { DISABLED_SERVICES: 'livestream,replay-capture' } })
    const proxy = await startHealthServer('ok')
    try {
      const r1 = await health(p, ['--local-url', proxy.url])
      expect(r1.code, r1.stdout).toBe(0)
      expect(r1.stdout).toContain(
        'OK capture: POST /e/ 401, POST /i/v0/e/ 401, POST /batch 401 (capture answers)',
      )
      expect(r1.stdout).toContain('OK flags: POST /flags 401 (feature-flags answers)')
      expect(r1.stdout).not.toMatch(/recordings/) // replay-capture is disabled: /s/ is not probed
      expect(proxy.requests.sort()).toEqual([
        'GET /',
        'POST /batch',
        'POST /e/',
        'POST /flags',
        'POST /i/v0/e/',
      ])

      proxy.routes['/e/'] = 502
      proxy.routes['/batch'] = 'hang'
      proxy.routes['/flags'] = 504
      const r2 = await health(p, ['--local-url', proxy.url, '--timeout', '6s'], {}, 40_000)
      expect(r2.code).toBe(2)
      expect(r2.stdout).toMatch(
        /^CRITICAL capture: POST \/e\/ 502: the proxy cannot reach the service, POST \/batch no answer within [\d.]+ s: events are lost; see docker compose logs capture$/m,
      )
      expect(r2.stdout).toMatch(
        /^WARNING flags: POST \/flags 504: the proxy cannot reach the service: feature flags fall back/m,
      )
      expect(r2.stdout.split('\n')[0]).toMatch(/^POSTHOG CRITICAL - capture: /)
    } finally {
      await proxy.close()
    }
  })

  it('checks the free disk of STACK_DIR and of Docker’s data, also inside Docker Desktop’s VM', async () => {
    const p = makeStackProject()
    const free = fs.statfsSync(p.stackDir)
    const freeGiB = (free.bavail * free.bsize) / 1024 ** 3
    const above = `${Math.ceil(freeGiB) + 2}GiB`
    const warn = await health(p, ['--local-url', local.url, '--disk-warning', above])
    expect(warn.code).toBe(1)
    expect(warn.stdout).toMatch(
      /^WARNING disk: .* GiB free of .* on .* and STACK_DIR: free some \(npx tsx scripts\/doctor\.mts names the biggest consumers\)$/m,
    )
    const crit = await health(p, [
      '--local-url',
      local.url,
      '--disk-warning',
      above,
      '--disk-critical',
      above,
    ])
    expect(crit.code).toBe(2)
    expect(crit.stdout).toMatch(/^CRITICAL disk: /m)
    expect((await health(p, ['--local-url', local.url, '--disk-warning', '15%,lots'])).code).toBe(3)

    // Docker Desktop: the data is in the VM, on a sparse disk image; not found = UNKNOWN, honestly.
    const d = makeStackProject()
    const running = Object.fromEntries(
      SERVICES.map((n) => [n, n === 'kafka-init' ? { state: 'exited' } : {}]),
    )
    d.scenario({ operatingSystem: 'Docker Desktop', dockerRootDir: '/var/lib/docker', services: running })
    const unknown = await health(d, ['--local-url', local.url])
    expect(unknown.code).toBe(3)
    expect(unknown.stdout).toMatch(
      /^UNKNOWN docker-disk: its disk image \(Docker\.raw\) is not where Docker Desktop keeps it/m,
    )
    expect(unknown.stdout).toMatch(/^OK stack-disk: /m)
    const image = path.join(d.dir, 'Library/Containers/com.docker.docker/Data/vms/0/data/Docker.raw')
    fs.mkdirSync(path.dirname(image), { recursive: true })
    const fd = fs.openSync(image, 'w')
    fs.writeSync(fd, Buffer.alloc(1024 * 1024, 1))
    fs.closeSync(fd)
    fs.truncateSync(image, 8 * 1024 ** 3) // an 8 GiB VM disk, 1 MiB of it written
    fs.rmSync(d.stateFile) // forget what docker info said
    const vm = await health(d, ['--local-url', local.url, '--disk-warning', '9GiB'])
    expect(vm.stdout).toMatch(
      /^WARNING docker-disk: [\d.]+ GiB free of 8\.0 GiB \(\d+ %\) on Docker Desktop’s VM disk/m,
    )
    expect(vm.code).toBe(1)
  })
})
