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
  it('all green: OK, exit 0, two docker calls, no notification on a first OK run', async () => {
    local.mode = 'ok'
    const p = makeStackProject({ env: { HEALTH_WEBHOOK_URL: webhook.url } })
    const before = webhook.received.length
    const r = await health(p, ['--local-url', local.url])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe('POSTHOG OK - 2 checks ok')
    expect(lines.slice(1)).toEqual([`OK local: ${local.url} answers ok`, 'OK services: 6 running'])
    expect(p.calls()).toEqual([
      'compose ps --all --format json',
      expect.stringMatching(/^inspect posthog-db-1 /),
    ])
    expect(webhook.received.length).toBe(before)
    expectNoSecrets(r, SECRETS)
    // Later runs inspect the containers seen last time: one docker call.
    const again = await health(p, ['--local-url', local.url])
    expect(again.code).toBe(0)
    expect(p.calls().slice(2)).toEqual([expect.stringMatching(/^inspect posthog-db-1 /)])
  })

  it('--json prints the same report for machines', async () => {
    const p = makeStackProject()
    const r = await health(p, ['--local-url', local.url, '--json'])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report).toMatchObject({ label: 'POSTHOG', status: 'OK' })
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(['local', 'services'])
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

  it('rejects bad flags with exit 2 and one line', async () => {
    const p = makeStackProject()
    const r = await health(p, ['--timeout', 'soon'])
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    for (const flag of ['--local-url', '--public-url']) {
      const bad = await health(p, [flag, '127.0.0.1:18000/_health'])
      expect(bad.code).toBe(2)
      expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(`^health: error: ${flag}=`)])
    }
    const notPem = path.join(p.dir, 'not-a-ca.pem')
    fs.writeFileSync(notPem, 'hello\n')
    for (const file of [path.join(p.dir, 'missing-ca.pem'), notPem]) {
      const bad = await health(p, ['--ca-file', file])
      expect(bad.code).toBe(2)
      expect(bad.stdout).toBe('')
      expect(bad.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(`^health: error: --ca-file ${file} `),
      ])
    }
  })
})
