import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  composeImages,
  composeServiceNames,
  formatPlan,
  interpolate,
  readJournal,
  recoveryFor,
  restoreSnapshot,
  SNAPSHOT_DIR,
  serviceDiff,
  servicesToStop,
  snapshotEnvText,
  snapshotFiles,
  takeSnapshot,
  type UpgradeJournal,
  upgradeLogLine,
  writeJournal,
} from '../../lib/upgrade.mts'
import { scratchDir } from '../helpers/common.ts'

const FIXTURES = path.resolve(process.cwd(), '../shared/fixtures/posthog')
const hobby = fs.readFileSync(path.join(FIXTURES, 'docker-compose.hobby.yml'), 'utf8')
const base = fs.readFileSync(path.join(FIXTURES, 'docker-compose.base.yml'), 'utf8')

describe('compose analysis', () => {
  // Compose's own ${VAR} syntax inside plain strings, on purpose.
  it('interpolates like Compose', () => {
    const env = { A: 'x', EMPTY: '' }
    const D = '$'
    expect(interpolate(`${D}A:${D}{A}-${D}{B:-def}-${D}{EMPTY:-d2}-${D}{EMPTY-d3}-${D}${D}A`, env)).toBe(
      'x:x-def-d2--$A',
    )
    expect(
      interpolate(`${D}{REGISTRY_URL}-node:${D}{POSTHOG_NODE_TAG:-latest}`, {
        REGISTRY_URL: 'posthog/posthog',
      }),
    ).toBe('posthog/posthog-node:latest')
  })

  it('lists the images of the real hobby file, following extends into the base file', () => {
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

describe('journal and recovery', () => {
  const j = (step: UpgradeJournal['step']): UpgradeJournal => ({
    version: 1,
    from: 'v1',
    to: 'v2',
    step,
    startedAt: '',
  })

  it('discards before the switch, resumes after it, rolls back when asked or already rolling back', () => {
    expect(recoveryFor(j('staging'), false)).toBe('discard')
    expect(recoveryFor(j('pulled'), true)).toBe('discard')
    expect(recoveryFor(j('switching'), false)).toBe('resume')
    expect(recoveryFor(j('migrating'), false)).toBe('resume')
    expect(recoveryFor(j('migrating'), true)).toBe('rollback')
    expect(recoveryFor(j('rolling-back'), false)).toBe('rollback')
  })

  it('round-trips through the file and ignores garbage', () => {
    const dir = scratchDir('journal-')
    writeJournal(dir, j('starting'))
    expect(readJournal(dir)?.step).toBe('starting')
    fs.writeFileSync(path.join(dir, 'upgrade.state.json'), '{"step":"nonsense"}')
    expect(readJournal(dir)).toBeUndefined()
  })

  it('writes one tab-separated log line per upgrade', () => {
    expect(
      upgradeLogLine({
        time: new Date('2026-01-01T00:00:00Z'),
        from: 'v1',
        to: 'v2',
        result: 'rolled-back',
        detail: 'a\nb',
      }),
    ).toBe('2026-01-01T00:00:00.000Z\tfrom=v1\tto=v2\tresult=rolled-back\ta b\n')
  })
})

describe('snapshot', () => {
  it('puts the generated files back byte for byte and removes files the new version added', () => {
    const stack = scratchDir('snap-')
    const env = path.join(stack, '..', `${path.basename(stack)}.env`)
    fs.writeFileSync(env, 'POSTHOG_APP_TAG=v1\n', { mode: 0o600 })
    fs.writeFileSync(path.join(stack, 'docker-compose.yml'), 'old')
    fs.mkdirSync(path.join(stack, 'compose'))
    fs.writeFileSync(path.join(stack, 'compose', 'start'), '#!/bin/sh\nold\n', { mode: 0o755 })
    fs.mkdirSync(path.join(stack, 'posthog'))
    fs.writeFileSync(path.join(stack, 'posthog', 'big'), 'checkout')
    expect(snapshotFiles(stack)).toEqual(['compose/start', 'docker-compose.yml'])
    takeSnapshot(stack, env)
    fs.writeFileSync(path.join(stack, 'docker-compose.yml'), 'new')
    fs.writeFileSync(path.join(stack, 'compose', 'start'), 'new')
    fs.writeFileSync(path.join(stack, 'added-by-new.yml'), 'new')
    restoreSnapshot(stack)
    expect(fs.readFileSync(path.join(stack, 'docker-compose.yml'), 'utf8')).toBe('old')
    expect(fs.readFileSync(path.join(stack, 'compose', 'start'), 'utf8')).toBe('#!/bin/sh\nold\n')
    expect(fs.statSync(path.join(stack, 'compose', 'start')).mode & 0o777).toBe(0o755)
    expect(fs.existsSync(path.join(stack, 'added-by-new.yml'))).toBe(false)
    expect(snapshotEnvText(stack)).toBe('POSTHOG_APP_TAG=v1\n')
    expect(fs.existsSync(path.join(stack, SNAPSHOT_DIR))).toBe(true)
  })
})
