// scripts/doctor.mts as a black box: one fake-docker scenario per known failure.
import fs from 'node:fs'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { expectNoSecrets } from '../helpers/common.ts'
import {
  bundled,
  makeStackProject,
  ROOT,
  run,
  SALT,
  SECRET,
  SECRETS,
  type StackProject,
} from '../helpers/monitor-env.ts'

// Bundled once (plain node starts it in a third of the time tsx takes); help.bats runs it via tsx.
let DOCTOR: string
beforeAll(async () => {
  DOCTOR = await bundled(path.join(ROOT, 'scripts/doctor.mts'))
})
const RUNNING = {
  db: {},
  redis7: {},
  web: {},
  worker: {},
  plugins: {},
  proxy: {},
  'kafka-init': { state: 'exited' },
}

function doctor(p: StackProject, args: string[] = [], env: Record<string, string> = {}) {
  return run(DOCTOR, args, { cwd: p.dir, env: { ...p.env, ...env }, timeoutMs: 60_000, tsx: false })
}

// One scenario per pitfall: what the containers and logs show, and what doctor must say.
const PITFALLS: {
  name: string
  scenario: object
  service: string
  cause: RegExp
  evidence: string
  fix: RegExp
}[] = [
  {
    name: 'Redis on 127.0.0.1 (known pitfall 1)',
    scenario: {
      services: { ...RUNNING, plugins: { state: 'restarting', exitCode: 1, restartCount: 9 } },
      logs: { plugins: ['[ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379'] },
    },
    service: 'plugins',
    cause: /tries Redis on 127\.0\.0\.1/,
    evidence: 'plugins | [ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379',
    fix: /SESSION_RECORDING_API_REDIS_HOST=redis7/,
  },
  {
    name: 'SES Region is missing (known pitfall 2)',
    scenario: {
      services: { ...RUNNING, plugins: { state: 'exited', exitCode: 1 } },
      logs: {
        plugins: [
          'Error: Region is missing',
          '    at resolveRegionConfig (/code/node_modules/@smithy/config-resolver)',
        ],
      },
    },
    service: 'plugins',
    cause: /SES client/,
    evidence: 'plugins | Error: Region is missing',
    fix: /SES_REGION=us-east-1/,
  },
  {
    name: 'Elasticsearch OOM-killed, exit 137 (known pitfall 3)',
    scenario: {
      services: { ...RUNNING, elasticsearch: { state: 'exited', exitCode: 137, oomKilled: true } },
    },
    service: 'elasticsearch',
    cause: /ran out of memory/,
    evidence: 'elasticsearch exited with code 137 (OOMKilled)',
    fix: /MEMORY_LIMITS/,
  },
  {
    name: 'migration race (known pitfall 4)',
    scenario: {
      services: RUNNING,
      logs: { plugins: ['error: column posthog_person.last_seen_at does not exist'] },
    },
    service: 'plugins',
    cause: /schema is behind/,
    evidence: 'plugins | error: column posthog_person.last_seen_at does not exist',
    fix: /exec -T web \.\/bin\/migrate.*safe: doctor --fix applies it/,
  },
  {
    name: 'worker restarting (known pitfall 5)',
    scenario: { services: { ...RUNNING, worker: { restartCount: 4 } } },
    service: 'worker',
    cause: /Celery worker/,
    evidence: 'worker container restarted 4 times',
    fix: /POSTHOG_CELERY_MAX_MEMORY_PER_CHILD/,
  },
  {
    name: 'Caddy trying ACME',
    scenario: {
      services: RUNNING,
      logs: {
        proxy: [
          '{"level":"info","ts":1754338120.64,"logger":"tls.obtain","msg":"obtaining certificate","identifier":"ph.example.com"}',
        ],
      },
    },
    service: 'proxy',
    cause: /certificate itself/,
    evidence: 'proxy | {"level":"info","ts":1754338120.64,"logger":"tls.obtain"',
    fix: /plain http/,
  },
]

describe('doctor', () => {
  it('finds nothing on a healthy stack: exit 0', async () => {
    const p = makeStackProject()
    p.scenario({ services: RUNNING, logs: { web: ['Booting worker with pid: 42'] } })
    const r = await doctor(p)
    expect(r.stdout.trim()).toBe('doctor: nothing wrong found')
    expect(r.code).toBe(0)
    const calls = p.calls()
    expect(calls).toContain('stats --no-stream --format {{json .}}')
    expect(calls.some((c) => /^compose logs --no-color --since 1h --tail 300$/.test(c))).toBe(true)
  })

  it.each(PITFALLS)('names $name, shows the evidence and the fix, exits 1', async (t) => {
    const p = makeStackProject()
    p.scenario(t.scenario)
    const r = await doctor(p)
    expect(r.code).toBe(1)
    const block = r.stdout.split('\n\n').find((b) => b.startsWith(`[${t.service}] `))
    expect(block, r.stdout).toBeDefined()
    expect(block).toMatch(t.cause)
    expect(block).toContain(`evidence: ${t.evidence}`.slice(0, 60))
    expect(block).toMatch(t.fix)
    if (r.stdout.includes('fix: docker compose '))
      expect(r.stdout).toContain(`cd ${p.stackDir} && docker compose ...`)
    expectNoSecrets(r, SECRETS)
  })

  it('redacts secrets in the evidence', async () => {
    const p = makeStackProject()
    p.scenario({
      services: RUNNING,
      logs: {
        plugins: [
          `Error: Region is missing (SECRET_KEY=${SECRET}, salt ${SALT}, postgres://posthog:pw1234@db/posthog)`,
        ],
      },
    })
    const r = await doctor(p)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('Region is missing (SECRET_KEY=***, salt ***, postgres://***@db/posthog)')
    expectNoSecrets(r, SECRETS)
  })

  it('scans frpc’s log and the logs given with --log-file', async () => {
    const p = makeStackProject()
    p.scenario({ services: RUNNING })
    const frpc = path.join(p.dir, 'frpc.log')
    const nginx = path.join(p.dir, 'error.log')
    fs.writeFileSync(
      frpc,
      [
        '2024-05-14 17:34:40.781 [I] [client/service.go:294] try to connect to server...',
        "2024-05-14 17:34:40.790 [W] [client/service.go:295] connect to server error: token in login doesn't match token from configuration",
        '',
      ].join('\n'),
    )
    fs.writeFileSync(
      nginx,
      '2026/11/25 10:00:00 [error] 12#12: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4\n' +
        '2026/11/25 10:01:00 [error] 12#12: *9 client intended to send too large body: 31457280 bytes, client: 1.2.3.4\n',
    )
    // frpc.log in FRP_LOG_DIR (where frpc-setup puts it) is read without being named.
    const r = await doctor(p, ['--log-file', nginx])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('[frpc] frpc and frps use different FRP_TOKEN values')
    expect(r.stdout).toMatch(/\[nginx\] nginx cannot reach PostHog through the tunnel \(502\)/)
    expect(r.stdout).toMatch(/\[nginx\] a request body is larger than nginx’s client_max_body_size \(413\)/)

    // A named log that cannot be read is bad input, not an all-clear scan of nothing.
    for (const bad of [path.join(p.dir, 'no-such.log'), p.dir]) {
      const r2 = await doctor(p, ['--log-file', bad])
      expect(r2.code).toBe(2)
      expect(r2.stdout).toBe('')
      expect(r2.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^doctor: error: --log-file .* cannot be read \((ENOENT|not a file)\): /),
      ])
    }
  })

  it('--fix runs the migrations in web, then restarts the failing node services, and checks again', async () => {
    const p = makeStackProject()
    p.scenario({
      services: { ...RUNNING, 'ingestion-general': { state: 'restarting', exitCode: 1, restartCount: 5 } },
      logs: {
        plugins: ['error: relation "posthog_pluginattachment" does not exist'],
        'ingestion-general': ['error: column posthog_pluginconfig.filters does not exist'],
      },
      rules: [
        {
          match: '^compose exec -T web \\./bin/migrate$',
          stdout: 'Operations to perform: Apply all migrations\nRunning migrations: OK',
          setLogs: { plugins: [], 'ingestion-general': [] },
        },
        {
          match: '^compose restart ',
          setState: { 'ingestion-general': { state: 'running', restartCount: 0 } },
        },
      ],
    })
    const r = await doctor(p, ['--fix'])
    const fixes = p.calls().filter((c) => /^compose (exec|restart|up)/.test(c))
    expect(fixes).toEqual(['compose exec -T web ./bin/migrate', 'compose restart plugins ingestion-general'])
    expect(r.stdout).toContain('running: docker compose exec -T web ./bin/migrate')
    expect(r.stdout).toContain('after the fixes: nothing wrong found')
    expect(r.code).toBe(0)
    // The check after the fixes reads only the logs written since they began.
    const logCalls = p.calls().filter((c) => c.startsWith('compose logs'))
    expect(logCalls.at(-1)).toMatch(/--since \d{4}-\d\d-\d\dT/)
  })

  it('--fix starts exited services and applies nothing that is not safe', async () => {
    const p = makeStackProject()
    p.scenario({
      services: { ...RUNNING, web: { state: 'exited', exitCode: 1 } },
      logs: { plugins: ['Error: Region is missing'] },
    })
    const r = await doctor(p, ['--fix'])
    expect(p.calls().filter((c) => /^compose (exec|restart|up)/.test(c))).toEqual(['compose up -d web'])
    expect(r.stdout).toContain('after the fixes:')
    expect(r.stdout).toMatch(/after the fixes: 1 problem found[\s\S]*\[plugins\]/)
    expect(r.code).toBe(1)
  })

  it('says when Docker is not running, and stops there', async () => {
    const p = makeStackProject()
    p.scenario({ daemon: false })
    const r = await doctor(p)
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/\[docker\] the Docker daemon does not answer/)
    expect(r.stdout).not.toMatch(/0 MiB/) // memory is not checked without a daemon
    expect(p.calls().some((c) => c.startsWith('compose logs'))).toBe(false)
  })

  it('--debug shows each docker call it makes, one line each, secrets masked', async () => {
    const p = makeStackProject()
    p.scenario({ services: RUNNING })
    const r = await doctor(p, ['--debug'])
    expect(r.code).toBe(0)
    const shown = r.stderr.split('\n').filter((l) => l.startsWith('$ '))
    const docker = p.env.DOCKER_BIN
    expect(shown).toEqual(
      expect.arrayContaining([
        `$ ${docker} info --format '{{json .}}'`,
        expect.stringMatching(
          new RegExp(`^\\$ ${docker} compose --project-directory \\S+ -p posthog .* ps --all --format json$`),
        ),
        expect.stringMatching(/ inspect posthog-db-1 /),
        `$ ${docker} stats --no-stream --format '{{json .}}'`,
        expect.stringMatching(/ logs --no-color --since 1h --tail 300$/),
      ]),
    )
    expect(shown.length).toBe(p.calls().length)
    expectNoSecrets(r, SECRETS)
  })

  it('--fix --json prints only JSON on stdout: what was found, applied and is left', async () => {
    const p = makeStackProject()
    p.scenario({ services: { ...RUNNING, web: { state: 'exited', exitCode: 1 } } })
    const r = await doctor(p, ['--fix', '--json'])
    expect(r.code).toBe(0)
    const report = JSON.parse(r.stdout)
    expect(report.found.map((f: { id: string; service: string }) => `${f.id} ${f.service}`)).toEqual([
      'exited web',
    ])
    expect(report.applied).toEqual(['docker compose up -d web'])
    expect(report.after).toEqual([])
    expect(r.stderr).toContain('running: docker compose up -d web')
  })

  it('prints evidence with escape sequences dropped and credentials it never saw masked', async () => {
    const p = makeStackProject()
    p.scenario({
      services: RUNNING,
      logs: {
        plugins: [
          'Error: Region is missing \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m Authorization: Bearer eyJ0b2tlbiI6MX0 redis://:hunter22@redis7:6379',
        ],
      },
    })
    const r = await doctor(p)
    expect(r.code).toBe(1)
    expect(r.stdout).not.toContain('\x1b')
    expect(r.stdout).not.toContain('\x07')
    expect(r.stdout).toContain(
      'evidence: plugins | Error: Region is missing red Authorization: Bearer *** redis://***@redis7:6379',
    )
    expect(r.stdout).not.toContain('hunter22')
  })

  it('reads only the end of a log, whatever its size: a 600 MB --log-file in bounded memory', async () => {
    const p = makeStackProject()
    p.scenario({ services: RUNNING })
    const big = path.join(p.dir, 'error.log')
    const line =
      '2026/11/25 10:00:00 [error] 12#12: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4\n'
    fs.writeFileSync(big, '')
    fs.truncateSync(big, 600 * 1024 ** 2) // sparse: 600 MB of NULs, no disk used
    fs.appendFileSync(
      big,
      `${'2026/11/25 09:59:59 [notice] 1#1: signal process started\n'.repeat(2000)}${line}`,
    )
    // maxRSS of the doctor process itself, written at its exit (no timing involved).
    const rssFile = path.join(p.dir, 'rss')
    const probe = path.join(p.dir, 'rss-probe.mjs')
    fs.writeFileSync(
      probe,
      `import fs from 'node:fs'\nprocess.on('exit', () => fs.writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)))\n`,
    )
    const r = await doctor(p, ['--log-file', big], { NODE_OPTIONS: `--import ${probe}` })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/\[nginx\] nginx cannot reach PostHog through the tunnel \(502\)/)
    const maxRssMb = Number(fs.readFileSync(rssFile, 'utf8')) / 1024
    expect(maxRssMb).toBeLessThan(150)
  })

  it('names the biggest volumes and images when the disk runs low', async () => {
    const p = makeStackProject()
    p.scenario({
      services: RUNNING,
      diskUsage: {
        images: [{ repository: 'posthog/posthog', tag: 'latest', size: 3.2e9 }],
        volumes: [
          { name: 'posthog_clickhouse-data', size: 48.7e9 },
          { name: 'posthog_zookeeper-datalog', size: 25.1e9 },
        ],
      },
    })
    const ok = await doctor(p)
    expect(ok.code).toBe(0)
    expect(p.calls().some((c) => c.startsWith('system df'))).toBe(false) // only asked when low
    const free = fs.statfsSync(p.stackDir)
    const above = `${Math.ceil((free.bavail * free.bsize) / 1024 ** 3) + 2}GiB`
    const low = await doctor(p, ['--disk-warning', above])
    expect(low.code).toBe(1)
    expect(low.stdout).toMatch(
      /\[disk\] the disk is nearly full \(the biggest: volume posthog_clickhouse-data 45\.4 GiB, volume posthog_zookeeper-datalog 23\.4 GiB, image posthog\/posthog:latest 3\.0 GiB\)/,
    )
    expect(low.stdout).toMatch(/evidence: [\d.]+ GiB free of [\d.]+ GiB \(\d+ %\) on /)
    expect(p.calls()).toContain('system df -v --format {{json .}}')
  })

  it('a .env that is a directory is bad input: exit 2, one line, nothing else done', async () => {
    const p = makeStackProject()
    const dir = path.join(p.dir, 'env-dir')
    fs.mkdirSync(dir)
    const r = await doctor(p, [], { HOMELAB_ENV_FILE: dir })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^doctor: error: .*env-dir is a directory, not a file/),
    ])
    expect(p.calls()).toEqual([])
  })
})
