import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { asideVolumeName, COPY_SCRIPT, copyVolumeArgs, dbVolume } from '../../../lib/ops/pg-major.mts'
import {
  composeImages,
  composeServiceNames,
  describeMajor,
  effectiveImages,
  formatPlan,
  imageVersion,
  majorChanges,
  serviceDiff,
  servicesToStop,
} from '../../../lib/ops/upgrade.mts'
import { scratchDir } from '../../helpers/common.ts'
import { needShared, UPSTREAM_POSTHOG } from '../../helpers/shared.ts'

// A compose pair of the hobby shape, written here so a plain clone tests the same analysis:
// services that `extends` the base (the proxy's image only there), ${VAR:-default} images,
// an env_file, a health condition, the Caddyfile in the base.
const D = '$' // Compose's own ${VAR} syntax, inside plain strings on purpose
const OWN_BASE = `services:
  db:
    image: postgres:15.12-alpine
    environment: { POSTGRES_USER: posthog, POSTGRES_DB: posthog, POSTGRES_PASSWORD: posthog }
    healthcheck: { test: ['CMD-SHELL', 'pg_isready -U posthog'] }
  redis7: { image: 'redis:7.2-alpine' }
  clickhouse:
    image: ${D}{CLICKHOUSE_SERVER_IMAGE:-clickhouse/clickhouse-server:26.6.2.158}
  kafka: { image: 'docker.io/redpandadata/redpanda:v25.1.9' }
  worker: &worker
    image: ${D}REGISTRY_URL:${D}POSTHOG_APP_TAG
    env_file: .env.services
  web:
    <<: *worker
    command: /compose/start
  plugins: { image: '${D}{REGISTRY_URL}-node:${D}{POSTHOG_NODE_TAG:-latest}' }
  proxy:
    image: caddy
    environment:
      CADDYFILE: |
        ${D}{CADDY_HOST:-http://localhost:8000} {
          reverse_proxy web:8000
        }
`
const ext = (svc: string) => `    extends: { file: docker-compose.base.yml, service: ${svc} }`
const OWN_HOBBY = `services:
  db:
${ext('db')}
    image: ${D}{DOCKER_REGISTRY_PREFIX:-}postgres:15.12-alpine
    volumes:
      - postgres-data:/var/lib/postgresql/data
  redis7:
${ext('redis7')}
  clickhouse:
${ext('clickhouse')}
    volumes: [clickhouse-data:/var/lib/clickhouse]
  kafka:
${ext('kafka')}
  worker:
${ext('worker')}
    depends_on: { db: { condition: service_healthy } }
  web:
${ext('web')}
    depends_on: { db: { condition: service_healthy } }
  plugins:
${ext('plugins')}
  ingestion-general:
${ext('plugins')}
  recording-api:
${ext('plugins')}
  temporal-django-worker:
${ext('worker')}
  proxy:
${ext('proxy')}
  capture: { image: 'ghcr.io/posthog/posthog/capture:master' }
  livestream: { image: 'ghcr.io/posthog/posthog/livestream:master' }
volumes:
  postgres-data:
  clickhouse-data:
`

const PAIRS: { name: string; hobby: string; base: string }[] = [
  { name: 'a hobby-shaped pair written here', hobby: OWN_HOBBY, base: OWN_BASE },
]
if (needShared('fixtures/posthog/docker-compose.hobby.yml', "the upstream hobby files' compose analysis"))
  PAIRS.push({
    name: 'the upstream hobby files',
    hobby: fs.readFileSync(path.join(UPSTREAM_POSTHOG!, 'docker-compose.hobby.yml'), 'utf8'),
    base: fs.readFileSync(path.join(UPSTREAM_POSTHOG!, 'docker-compose.base.yml'), 'utf8'),
  })

describe('compose analysis', () => {
  it('interpolates images as Compose does, required values (:?) and alternatives (:+) included', () => {
    const hobby = `services:
  web: { image: '${D}{REGISTRY_URL:?set REGISTRY_URL}:${D}{POSTHOG_APP_TAG}' }
  plugins: { image: '${D}{REGISTRY_URL}-node${D}{NODE_SUFFIX:+-${D}NODE_SUFFIX}:${D}{POSTHOG_NODE_TAG:-latest}' }
`
    const env = { REGISTRY_URL: 'posthog/posthog', POSTHOG_APP_TAG: 'v2' }
    expect(composeImages(hobby, undefined, env)).toEqual([
      'posthog/posthog-node:latest',
      'posthog/posthog:v2',
    ])
    expect(effectiveImages([hobby], undefined, { ...env, NODE_SUFFIX: 'arm' })).toEqual({
      web: 'posthog/posthog:v2',
      plugins: 'posthog/posthog-node-arm:latest',
    })
    expect(effectiveImages([hobby], undefined, { ...env, NODE_SUFFIX: '' }).plugins).toBe(
      'posthog/posthog-node:latest',
    )
    expect(() => composeImages(hobby, undefined, { POSTHOG_APP_TAG: 'v2' })).toThrow(
      'required variable REGISTRY_URL is missing a value: set REGISTRY_URL',
    )
  })
})

describe.each(PAIRS)('compose analysis of $name', ({ hobby, base }) => {
  it('lists the images, following extends into the base file', () => {
    const images = composeImages(hobby, base, {
      REGISTRY_URL: 'posthog/posthog',
      POSTHOG_APP_TAG: 'v2',
      POSTHOG_NODE_TAG: 'abc',
    })
    expect(images).toContain('posthog/posthog:v2')
    expect(images).toContain('posthog/posthog-node:abc')
    expect(images).toContain('postgres:15.12-alpine')
    expect(images).toContain('clickhouse/clickhouse-server:26.6.2.158') // from the base, default value
    expect(images).toContain('caddy') // proxy: image only in the base
    expect(images.every((i) => !i.includes('$'))).toBe(true)
  })

  it('stops the node, ingestion and worker services but keeps web, proxy and the data stores', () => {
    const stop = servicesToStop(hobby, base)
    for (const s of [
      'plugins',
      'ingestion-general',
      'recording-api',
      'worker',
      'temporal-django-worker',
      'capture',
    ])
      expect(stop).toContain(s)
    for (const s of ['web', 'proxy', 'db', 'clickhouse', 'kafka', 'redis7']) expect(stop).not.toContain(s)
  })

  it('diffs services', () => {
    const before = composeServiceNames(hobby)
    expect(before).toContain('web')
    const after = [...before.filter((s) => s !== 'livestream'), 'new-thing']
    expect(serviceDiff(before, after)).toEqual({ added: ['new-thing'], removed: ['livestream'] })
  })

  it('finds the db volume to move and the data stores whose major changes', () => {
    expect(dbVolume(hobby)).toBe('posthog_postgres-data')
    const env = { REGISTRY_URL: 'posthog/posthog', POSTHOG_APP_TAG: 'v2' }
    const now = effectiveImages([hobby], base, env)
    expect(now.db).toBe('postgres:15.12-alpine')
    const pg17 = hobby.replace(/postgres:15\.\d+-alpine/, 'postgres:17.2-alpine')
    expect(majorChanges(now, effectiveImages([pg17], base, env))).toEqual([
      {
        service: 'db',
        engine: 'PostgreSQL',
        fromImage: 'postgres:15.12-alpine',
        toImage: 'postgres:17.2-alpine',
        from: '15',
        to: '17',
        kind: 'major',
      },
    ])
    // The image a later file sets wins: a docker-compose.local.yml pinning the db keeps it.
    const local = 'services:\n  db:\n    image: postgres:15.12-alpine\n'
    expect(majorChanges(now, effectiveImages([pg17, undefined, local], base, env))).toEqual([])
    // CLICKHOUSE_SERVER_IMAGE in .env picks the ClickHouse image.
    const ch = effectiveImages([hobby], base, {
      ...env,
      CLICKHOUSE_SERVER_IMAGE: 'clickhouse/clickhouse-server:25.8.2.1',
    })
    expect(majorChanges(now, ch)).toMatchObject([
      { engine: 'ClickHouse', from: '26.6', to: '25.8', kind: 'downgrade' },
    ])
  })
})

describe('major versions', () => {
  it('reads PostgreSQL majors and ClickHouse release lines from image tags', () => {
    expect(imageVersion('postgres:15.12-alpine', 'PostgreSQL')).toBe('15')
    expect(imageVersion('postgres:12-alpine', 'PostgreSQL')).toBe('12')
    expect(imageVersion('docker.io/library/postgres:16@sha256:abcd', 'PostgreSQL')).toBe('16')
    expect(imageVersion('registry.local:5000/postgres:17.2', 'PostgreSQL')).toBe('17')
    expect(imageVersion('postgres', 'PostgreSQL')).toBeUndefined()
    expect(imageVersion('postgres:latest', 'PostgreSQL')).toBeUndefined()
    expect(imageVersion('clickhouse/clickhouse-server:26.6.2.158', 'ClickHouse')).toBe('26.6')
    expect(imageVersion('clickhouse/clickhouse-server:24.8-alpine', 'ClickHouse')).toBe('24.8')
    expect(imageVersion('clickhouse/clickhouse-server:24', 'ClickHouse')).toBeUndefined()
  })

  it('tells a major, a minor, a downgrade and an unknown apart', () => {
    const change = (from: string, to: string, svc = 'db') => majorChanges({ [svc]: from }, { [svc]: to })
    expect(change('postgres:15.12-alpine', 'postgres:15.13-alpine')).toEqual([])
    expect(change('postgres:12-alpine', 'postgres:15.12-alpine')[0]?.kind).toBe('major')
    expect(change('postgres:15.12-alpine', 'postgres:12-alpine')[0]?.kind).toBe('downgrade')
    expect(change('postgres:15.12-alpine', 'postgres:latest')[0]?.kind).toBe('unknown')
    expect(change('postgres:15', 'postgres:15')).toEqual([])
    const ch = change(
      'clickhouse/clickhouse-server:25.6.13.41',
      'clickhouse/clickhouse-server:26.6.2.158',
      'clickhouse',
    )
    expect(ch).toMatchObject([{ engine: 'ClickHouse', from: '25.6', to: '26.6', kind: 'major' }])
    expect(
      change(
        'clickhouse/clickhouse-server:26.6.2.158',
        'clickhouse/clickhouse-server:26.6.3.1',
        'clickhouse',
      ),
    ).toEqual([])
    expect(change('redis:7.2', 'redis:8.0', 'redis7')).toEqual([]) // only PostgreSQL and ClickHouse
  })

  it('says in the plan what is refused, what moves and what is not backed up', () => {
    const pg = majorChanges({ db: 'postgres:12-alpine' }, { db: 'postgres:15.12-alpine' })[0]!
    const ch = majorChanges({ clickhouse: 'c/ch:25.6.1' }, { clickhouse: 'c/ch:26.6.2' })[0]!
    expect(describeMajor(pg, {})).toBe(
      'PostgreSQL 12 -> 15 (db: postgres:12-alpine -> postgres:15.12-alpine): a major version the new server cannot read the old data of; refused without --postgres-major',
    )
    expect(describeMajor(pg, { postgresMajor: true })).toMatch(
      /moved by backup and restore into a new volume, the old volume is kept$/,
    )
    expect(describeMajor(ch, {})).toMatch(
      /a new release line; ClickHouse is NOT backed up \(pass --clickhouse/,
    )
    expect(describeMajor(ch, { clickhouseBackup: true })).toMatch(/ClickHouse is backed up first$/)
    const plan = {
      from: 'v1',
      to: 'v2',
      added: [],
      removed: [],
      images: [],
      stop: ['plugins'],
      majors: [pg, ch],
    }
    const text = formatPlan({ ...plan, postgresMajor: true, clickhouseBackup: true })
    expect(text).toMatch(/backup: \.env and PostgreSQL \(every database on the server\) and ClickHouse/)
    expect(text).toMatch(
      /4 stop everything, keep the old PostgreSQL volume aside, start the new db on a new volume/,
    )
    expect(formatPlan(plan)).toMatch(/backup: \.env and PostgreSQL; ClickHouse is NOT backed up/)
    expect(formatPlan(plan)).toMatch(/4 stop plugins /)
  })

  it('moves the db volume under names of its own, by a verified copy', () => {
    expect(asideVolumeName('posthog_postgres-data', '15', new Date('2026-12-02T13:17:55.123Z'))).toBe(
      'posthog_postgres-data-pg15-20261202T131755Z',
    )
    const long =
      'services:\n  db:\n    volumes:\n      - type: volume\n        source: pg\n        target: /var/lib/postgresql/data\nvolumes:\n  pg:\n    name: my-pg\n'
    expect(dbVolume(long)).toBe('my-pg')
    expect(dbVolume('services:\n  db:\n    volumes: ["./pgdata:/var/lib/postgresql/data"]\n')).toBeUndefined()
    expect(dbVolume('services:\n  db:\n    image: postgres\n')).toBeUndefined()
    expect(copyVolumeArgs('a', 'b', 'postgres:17.2-alpine')).toEqual([
      ...['run', '--rm', '--network', 'none', '--entrypoint', 'sh', '-v', 'a:/from:ro', '-v', 'b:/to'],
      ...['postgres:17.2-alpine', '-c', COPY_SCRIPT],
    ])
  })

  it('the copy script copies everything and fails on a short copy (run by sh here)', () => {
    const dir = scratchDir('copy-')
    const from = path.join(dir, 'from')
    const to = path.join(dir, 'to')
    fs.mkdirSync(path.join(from, 'base', '1'), { recursive: true })
    fs.writeFileSync(path.join(from, 'base', '1', '1259'), 'heap')
    fs.writeFileSync(path.join(from, 'PG_VERSION'), '15\n')
    fs.mkdirSync(to)
    const script = COPY_SCRIPT.replaceAll('/from', from).replaceAll('/to', to)
    const ok = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 })
    expect(ok.status).toBe(0)
    expect(ok.stdout.trim()).toBe('copied 5 entries')
    expect(fs.readFileSync(path.join(to, 'base', '1', '1259'), 'utf8')).toBe('heap')
    // a copy that comes out short (here: a file the copy cannot read) fails
    if (process.getuid?.() !== 0) {
      fs.rmSync(to, { recursive: true })
      fs.mkdirSync(to)
      fs.chmodSync(path.join(from, 'PG_VERSION'), 0)
      expect(spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 }).status).not.toBe(0)
    }
  })
})

describe('plan', () => {
  it('formats a plan with tags, diff and images', () => {
    const text = formatPlan({
      from: 'v1',
      to: 'v2',
      toCommit: 'a'.repeat(40),
      added: ['x'],
      removed: [],
      images: ['posthog/posthog:v2'],
      stop: ['plugins'],
    })
    expect(text).toMatch(/PostHog v1 -> v2 \(aaaaaaaaaaaa\)/)
    expect(text).toMatch(/services added: x/)
    expect(text).toMatch(/services removed: none/)
    expect(text).toMatch(/images to pull \(1\): posthog\/posthog:v2/)
  })
})
