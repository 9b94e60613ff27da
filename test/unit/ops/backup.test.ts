import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { mergeEnv, toConfig } from '../../../lib/core/env.mts'
import { secretsDifferingFrom } from '../../../lib/core/secrets.mts'
import {
  applyRetention,
  BACKUP_NAME,
  type BackupManifest,
  buildManifest,
  clickhouseBackupQuery,
  describeFiles,
  findIncomplete,
  MANIFEST,
  newBackupName,
  PARTIAL_MARKER,
  PG_DUMP_FILE,
  readManifest,
  removeIncomplete,
  resolveBackup,
  retentionVictims,
  takeBackup,
  verifyBackup,
} from '../../../lib/ops/backup.mts'
import { scratchDir } from '../../helpers/common.ts'

function scratch(): string {
  return scratchDir('backup-unit-')
}

function config(root: string) {
  const raw = mergeEnv(
    { POSTHOG_SECRET: 's'.repeat(56), ENCRYPTION_SALT_KEYS: 'k'.repeat(32), POSTHOG_APP_TAG: 'v1' },
    {},
  )
  return toConfig(root, path.join(root, '.env'), raw)
}

async function fakeBackup(backupDir: string, name: string, createdAt: string): Promise<string> {
  const dir = path.join(backupDir, name)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, PG_DUMP_FILE), `dump of ${name}`)
  fs.writeFileSync(path.join(dir, '.env'), 'X=1\n')
  const m = buildManifest({
    cfg: config(backupDir),
    files: await describeFiles(dir),
    createdAt: new Date(createdAt),
  })
  fs.writeFileSync(path.join(dir, MANIFEST), JSON.stringify(m))
  return dir
}

describe('naming', () => {
  it('names folders by UTC time and never reuses one', () => {
    const dir = scratch()
    const at = new Date('2026-11-25T16:34:11.500Z')
    const first = newBackupName(dir, at)
    expect(first).toBe('20261125T163411Z')
    fs.mkdirSync(path.join(dir, first))
    expect(newBackupName(dir, at)).toBe('20261125T163411Z-2')
    expect(BACKUP_NAME.test('20261125T163411Z-2')).toBe(true)
    fs.mkdirSync(path.join(dir, '20261125T163411Z-2.partial'))
    expect(newBackupName(dir, at)).toBe('20261125T163411Z-3') // nor the name of one being written
  })
})

describe('manifest', () => {
  it('records sizes, hashes, tag, version and secret fingerprints (never the secrets)', async () => {
    const root = scratch()
    fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ version: '9.8.7' }))
    fs.writeFileSync(path.join(root, PG_DUMP_FILE), 'abc')
    const cfg = config(root)
    const m = buildManifest({
      cfg,
      files: await describeFiles(root),
      createdAt: new Date(0),
      posthogCommit: 'c'.repeat(40),
    })
    expect(m.toolkitVersion).toBe('9.8.7')
    expect(m.posthogTag).toBe('v1')
    expect(m.posthogCommit).toBe('c'.repeat(40))
    const dump = m.files.find((f) => f.name === PG_DUMP_FILE)!
    expect(dump.size).toBe(3)
    expect(dump.sha256).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(Object.keys(m.secretFingerprints)).toEqual(['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS'])
    expect(JSON.stringify(m)).not.toContain('s'.repeat(56))
    expect(JSON.stringify(m)).not.toContain('k'.repeat(32))
  })

  it('names the guarded secrets a backup was taken with other values of', () => {
    const root = scratch()
    const cfg = config(root)
    const m = buildManifest({ cfg, files: [], createdAt: new Date(0) })
    expect(secretsDifferingFrom(m.secretFingerprints, cfg)).toEqual([])
    const other = toConfig(root, path.join(root, '.env'), {
      ...cfg.raw,
      ENCRYPTION_SALT_KEYS: 'o'.repeat(32),
    })
    expect(secretsDifferingFrom(m.secretFingerprints, other)).toEqual(['ENCRYPTION_SALT_KEYS'])
    // A manifest from before a secret was guarded says nothing about it.
    const older = { secretFingerprints: { ENCRYPTION_SALT_KEYS: m.secretFingerprints.ENCRYPTION_SALT_KEYS! } }
    expect(
      secretsDifferingFrom(older.secretFingerprints, {
        ...cfg,
        raw: { ...cfg.raw, POSTHOG_SECRET: 'x'.repeat(56) },
      }),
    ).toEqual([])
  })

  it('verification catches a changed, truncated or missing file', async () => {
    const dir = await fakeBackup(scratch(), '20260101T000000Z', '2026-01-01T00:00:00Z')
    expect(await verifyBackup(dir)).toEqual([])
    fs.writeFileSync(path.join(dir, PG_DUMP_FILE), 'dump of 20260101T000000X')
    expect((await verifyBackup(dir))[0]).toMatch(/does not match its SHA-256/)
    fs.writeFileSync(path.join(dir, PG_DUMP_FILE), 'short')
    expect((await verifyBackup(dir))[0]).toMatch(/wrong size/)
    fs.rmSync(path.join(dir, PG_DUMP_FILE))
    expect((await verifyBackup(dir))[0]).toMatch(/missing/)
    fs.writeFileSync(path.join(dir, MANIFEST), '{"not":"ours"}')
    expect(readManifest(dir)).toBeUndefined()
    expect((await verifyBackup(dir))[0]).toMatch(/not a backup manifest/)
  })
})

describe('retention', () => {
  const entry = (name: string, createdAt: string) => ({ name, manifest: { createdAt } as BackupManifest })

  it('picks all but the newest N by creation time', () => {
    const entries = [
      entry('c', '2026-01-03'),
      entry('a', '2026-01-01'),
      entry('b', '2026-01-02'),
      entry('d', '2026-01-04'),
    ]
    expect(retentionVictims(entries, 2)).toEqual(['a', 'b'])
    expect(retentionVictims(entries, 4)).toEqual([])
    expect(retentionVictims(entries, 1)).toEqual(['a', 'b', 'c'])
  })

  it('keeps exactly the newest N and never touches folders without a valid manifest', async () => {
    const dir = scratch()
    for (let day = 1; day <= 9; day++)
      await fakeBackup(dir, `2026010${day}T000000Z`, `2026-01-0${day}T00:00:00Z`)
    fs.mkdirSync(path.join(dir, 'my-notes'))
    fs.mkdirSync(path.join(dir, '20250101T000000Z')) // looks like ours, but has no manifest
    fs.writeFileSync(path.join(dir, 'README.txt'), 'mine')
    const removed = applyRetention(dir, 7)
    expect(removed).toEqual(['20260101T000000Z', '20260102T000000Z'])
    expect(fs.readdirSync(dir).sort()).toEqual([
      '20250101T000000Z',
      '20260103T000000Z',
      '20260104T000000Z',
      '20260105T000000Z',
      '20260106T000000Z',
      '20260107T000000Z',
      '20260108T000000Z',
      '20260109T000000Z',
      'README.txt',
      'my-notes',
    ])
  })

  it('a failure to remove an old backup never throws the new, complete one away', async () => {
    const root = scratch()
    const backups = path.join(root, 'backups')
    await fakeBackup(backups, '20260101T000000Z', '2026-01-01T00:00:00Z')
    const docker = path.join(root, 'docker')
    fs.writeFileSync(docker, '#!/bin/sh\necho custom-format-dump\n', { mode: 0o755 })
    fs.writeFileSync(path.join(root, '.env'), 'X=1\n')
    const cfg = { ...config(root), raw: { ...config(root).raw, BACKUP_KEEP: '1' } }
    const realRm = fs.rmSync
    const rm = vi.spyOn(fs, 'rmSync').mockImplementation((p, opts) => {
      if (String(p).includes('20260101T000000Z')) throw new Error(`EACCES: permission denied, rmdir '${p}'`)
      realRm(p, opts)
    })
    const before = process.env.DOCKER_BIN
    process.env.DOCKER_BIN = docker
    const lines: string[] = []
    try {
      const result = await takeBackup(cfg, {
        log: (l) => lines.push(l),
        now: new Date('2026-02-01T00:00:00Z'),
      })
      expect(result.removed).toEqual([])
      expect(await verifyBackup(result.dir)).toEqual([])
      expect(lines.at(-1)).toMatch(/the new backup is complete, but removing old ones failed \(EACCES/)
    } finally {
      rm.mockRestore()
      if (before === undefined) delete process.env.DOCKER_BIN
      else process.env.DOCKER_BIN = before
    }
  })

  it('resolves --from by name, by path, or the newest', async () => {
    const dir = scratch()
    const older = await fakeBackup(dir, '20260101T000000Z', '2026-01-01T00:00:00Z')
    const newer = await fakeBackup(dir, '20260102T000000Z', '2026-01-02T00:00:00Z')
    expect(resolveBackup(dir, undefined)).toBe(newer)
    expect(resolveBackup(dir, '20260101T000000Z')).toBe(older)
    expect(resolveBackup(dir, older)).toBe(older)
    expect(() => resolveBackup(dir, 'nope')).toThrow(/no backup at 'nope'/)
    expect(() => resolveBackup(scratch(), undefined)).toThrow(/no backup in/)
  })
})

describe('clickhouse', () => {
  it('builds the BACKUP query only for our folder names', () => {
    expect(clickhouseBackupQuery('20260101T000000Z')).toBe(
      "BACKUP DATABASE posthog TO File('/backups/20260101T000000Z/')",
    )
    expect(() => clickhouseBackupQuery("x'); DROP")).toThrow()
  })
})

describe('incomplete backups (a run killed midway)', () => {
  const marker = (extra: object = {}) =>
    JSON.stringify({
      format: 'posthog-homelab-backup/1',
      startedAt: '2026-01-01T00:00:00Z',
      pid: 1,
      ...extra,
    })

  function leftovers(dir: string) {
    // killed after the marker, during pg_dump
    fs.mkdirSync(path.join(dir, '20260101T000000Z.partial'))
    fs.writeFileSync(path.join(dir, '20260101T000000Z.partial', PARTIAL_MARKER), marker())
    fs.writeFileSync(path.join(dir, '20260101T000000Z.partial', PG_DUMP_FILE), 'PGDMP half')
    // killed between creating the folder and writing the marker
    fs.mkdirSync(path.join(dir, '20260102T000000Z.partial'))
    // killed during the ClickHouse BACKUP, whose part lives beside the folder
    const chPart = path.join(dir, 'clickhouse', '20260103T000000Z')
    fs.mkdirSync(chPart, { recursive: true })
    fs.writeFileSync(path.join(chPart, '.backup'), 'half')
    fs.mkdirSync(path.join(dir, '20260103T000000Z.partial'))
    fs.writeFileSync(
      path.join(dir, '20260103T000000Z.partial', PARTIAL_MARKER),
      marker({ clickhouseFolder: chPart }),
    )
    return chPart
  }

  function foreign(dir: string) {
    fs.mkdirSync(path.join(dir, '20260104T000000Z.partial')) // our suffix, but someone else's files
    fs.writeFileSync(path.join(dir, '20260104T000000Z.partial', 'notes.txt'), 'mine')
    fs.mkdirSync(path.join(dir, '20260105T000000Z')) // our name, no manifest, not partial
    fs.mkdirSync(path.join(dir, 'photos.partial'))
    fs.writeFileSync(path.join(dir, '20260106T000000Z.partial'), 'a file, not a folder')
  }

  it('recognises what killed runs left and nothing else', async () => {
    const dir = scratch()
    const chPart = leftovers(dir)
    foreign(dir)
    // killed between the manifest and the rename: whole, but never published
    const whole = await fakeBackup(dir, '20260107T000000Z.partial', '2026-01-07T00:00:00Z')
    expect(findIncomplete(dir)).toEqual([
      { name: '20260101T000000Z', dir: path.join(dir, '20260101T000000Z.partial') },
      { name: '20260102T000000Z', dir: path.join(dir, '20260102T000000Z.partial') },
      { name: '20260103T000000Z', dir: path.join(dir, '20260103T000000Z.partial'), clickhouseFolder: chPart },
      { name: '20260107T000000Z', dir: whole },
    ])
  })

  it('removes them with their ClickHouse part, one line each, and leaves the rest alone', () => {
    const dir = scratch()
    const chPart = leftovers(dir)
    foreign(dir)
    const lines: string[] = []
    expect(removeIncomplete(dir, (l) => lines.push(l))).toEqual([
      '20260101T000000Z',
      '20260102T000000Z',
      '20260103T000000Z',
    ])
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(
      /^removed an incomplete backup left by an interrupted run: .*20260101T000000Z\.partial$/,
    )
    expect(fs.existsSync(chPart)).toBe(false)
    expect(fs.readdirSync(dir).sort()).toEqual([
      '20260104T000000Z.partial',
      '20260105T000000Z',
      '20260106T000000Z.partial',
      'clickhouse',
      'photos.partial',
    ])
    expect(removeIncomplete(dir, () => {})).toEqual([])
  })

  it('reports a ClickHouse part it cannot remove instead of failing', () => {
    const dir = scratch()
    const chPart = leftovers(dir)
    const realRm = fs.rmSync
    const rm = vi.spyOn(fs, 'rmSync').mockImplementation((p, opts) => {
      if (String(p) === chPart) throw new Error(`EACCES: permission denied, rmdir '${p}'`)
      realRm(p, opts)
    })
    const lines: string[] = []
    try {
      expect(removeIncomplete(dir, (l) => lines.push(l))).toHaveLength(3)
    } finally {
      rm.mockRestore()
    }
    expect(lines.find((l) => l.includes('ClickHouse'))).toMatch(
      /could not remove the unfinished ClickHouse part .* \(EACCES.*\); .*sudo rm -r /,
    )
  })

  it('restore --from names an incomplete backup as such', () => {
    const dir = scratch()
    leftovers(dir)
    expect(() => resolveBackup(dir, '20260101T000000Z.partial')).toThrow(
      /'20260101T000000Z\.partial' is an incomplete backup \(its run was interrupted\)/,
    )
  })

  it('a backup is published whole: no partial folder, no marker in it or its manifest', async () => {
    const root = scratch()
    const docker = path.join(root, 'docker')
    fs.writeFileSync(docker, '#!/bin/sh\necho custom-format-dump\n', { mode: 0o755 })
    fs.writeFileSync(path.join(root, '.env'), 'X=1\n')
    const before = process.env.DOCKER_BIN
    process.env.DOCKER_BIN = docker
    try {
      const result = await takeBackup(config(root), { now: new Date('2026-02-01T00:00:00Z') })
      expect(path.basename(result.dir)).toBe('20260201T000000Z')
      expect(fs.readdirSync(path.dirname(result.dir))).toEqual(['20260201T000000Z'])
      expect(fs.readdirSync(result.dir).sort()).toEqual(['.env', MANIFEST, PG_DUMP_FILE])
      expect(await verifyBackup(result.dir)).toEqual([])
    } finally {
      if (before === undefined) delete process.env.DOCKER_BIN
      else process.env.DOCKER_BIN = before
    }
  })
})
