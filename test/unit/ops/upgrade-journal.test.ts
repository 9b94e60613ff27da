// The on-disk state of an upgrade: the journal and what a re-run decides from it, the snapshot a
// rollback puts back, and the upgrades.log line.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  closeUpgrade,
  readJournal,
  recoveryFor,
  restoreSnapshot,
  resumption,
  rollbackCheckout,
  SNAPSHOT_DIR,
  snapshotEnvText,
  snapshotFiles,
  takeSnapshot,
  type UpgradeJournal,
  upgradeLogLine,
  writeJournal,
} from '../../../lib/ops/upgrade-journal.mts'
import { scratchDir } from '../../helpers/common.ts'

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

  it('a re-run without --to finishes an upgrade cut short after the switch, naming where in the log', () => {
    expect(resumption(j('migrating'), { rollback: false })).toEqual({
      action: 'resume',
      note: 'resumed after an interruption at migrating',
    })
    expect(resumption(j('starting'), { to: 'v2', rollback: false })).toMatchObject({ action: 'resume' })
  })

  it('discards an upgrade that never touched the live stack, then upgrades only when --to is given', () => {
    const detail = 'interrupted at backup, before anything live changed'
    expect(resumption(j('backup'), { rollback: false })).toEqual({
      action: 'discard',
      detail,
      thenUpgrade: false,
    })
    // Another target is fine then: nothing of the old attempt is live.
    expect(resumption(j('pulled'), { to: 'v3', rollback: false })).toEqual({
      action: 'discard',
      detail: 'interrupted at pulled, before anything live changed',
      thenUpgrade: true,
    })
  })

  it('refuses another target while an upgrade past the switch is unfinished', () => {
    for (const step of ['switching', 'migrating', 'rolling-back'] as const)
      expect(() => resumption(j(step), { to: 'v3', rollback: false })).toThrow(
        new UsageError(
          `an upgrade v1 -> v2 was interrupted (step ${step}): run upgrade without --to to finish it, or with --rollback`,
        ),
      )
  })

  it('a rollback asked for succeeds quietly; one that a failure began still reports that failure', () => {
    expect(resumption(j('migrating'), { rollback: true })).toEqual({
      action: 'rollback',
      failure: 'interrupted at migrating, rolled back on request',
      requested: true,
    })
    const failed = { ...j('rolling-back'), failure: 'health failed: 502' }
    expect(resumption(failed, { rollback: false })).toEqual({
      action: 'rollback',
      failure: 'health failed: 502',
      requested: false,
    })
    // --rollback finishes the rollback a failure began: the upgrade still failed (exit 1).
    expect(resumption(failed, { rollback: true })).toMatchObject({ requested: false })
    expect(resumption(failed, { to: 'v2', rollback: false })).toMatchObject({ action: 'rollback' })
  })

  it('a rollback checks out the exact commit it started from when the snapshot holds its files', () => {
    const started = { ...j('migrating'), fromCommit: 'a'.repeat(40) }
    expect(rollbackCheckout(started, true)).toBe('a'.repeat(40))
    expect(rollbackCheckout(started, false)).toBe('v1')
    expect(rollbackCheckout(j('migrating'), true)).toBe('v1')
  })

  it('closing an upgrade leaves its log line and nothing else', () => {
    const dir = scratchDir('close-')
    writeJournal(dir, j('pulled'))
    fs.mkdirSync(path.join(dir, '.upgrade-staging', 'posthog'), { recursive: true })
    fs.mkdirSync(path.join(dir, SNAPSHOT_DIR))
    closeUpgrade(dir, { from: 'v1', to: 'v2', result: 'failed', detail: 'pull failed' }, new Date(0))
    expect(fs.readdirSync(dir)).toEqual(['upgrades.log'])
    expect(fs.readFileSync(path.join(dir, 'upgrades.log'), 'utf8')).toBe(
      '1970-01-01T00:00:00.000Z\tfrom=v1\tto=v2\tresult=failed\tpull failed\n',
    )
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
