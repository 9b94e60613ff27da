import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  adoptVersion,
  describeVersion,
  formatVersion,
  isFrozenBranch,
  type PosthogVersion,
  pinnedConfig,
  readVersion,
  VERSION_FILE,
} from '../../../lib/stack/posthog-version.mts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)
const frozen: PosthogVersion = {
  ref: 'latest',
  kind: 'branch',
  commit: A,
  appTag: A,
  nodeTag: B,
  repoUrl: 'https://github.com/PostHog/posthog.git',
  registryUrl: 'posthog/posthog',
  resolvedAt: '2026-05-01T10:00:00.000Z',
}

function stackWith(content?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'version-'))
  if (content !== undefined) fs.writeFileSync(path.join(dir, VERSION_FILE), content)
  return dir
}

describe('the version record', () => {
  it('reads what it writes, and ignores a damaged one', () => {
    expect(readVersion(stackWith(formatVersion(frozen)))).toEqual(frozen)
    expect(readVersion(stackWith('{not json'))).toBeUndefined()
    expect(readVersion(stackWith('{"ref":"latest","commit":"abc"}'))).toBeUndefined()
    expect(readVersion(stackWith())).toBeUndefined()
  })
  it('knows a frozen branch from a tag or another ref', () => {
    const dir = stackWith(formatVersion(frozen))
    expect(isFrozenBranch(dir, 'latest')).toBe(true)
    expect(isFrozenBranch(dir, 'main')).toBe(false)
    expect(isFrozenBranch(stackWith(formatVersion({ ...frozen, ref: 'v1', kind: 'tag' })), 'v1')).toBe(false)
  })
  it('adopts the staged version of the same ref only', () => {
    const staged = stackWith(formatVersion({ ...frozen, commit: B }))
    const live = stackWith(formatVersion(frozen))
    adoptVersion(staged, live, 'v2')
    expect(readVersion(live)?.commit).toBe(A)
    adoptVersion(staged, live, 'latest')
    expect(readVersion(live)?.commit).toBe(B)
  })
})

describe('what runs', () => {
  it('says in one line which commit runs and what moves it', () => {
    expect(describeVersion(frozen)).toBe(
      "PostHog latest is held at commit aaaaaaaaaaaa (the newest with published images on 2026-05-01); 'npx tsx scripts/upgrade.mts --to latest' moves it",
    )
    expect(describeVersion({ ...frozen, ref: 'v1', kind: 'tag', appTag: 'v1' })).toMatch(
      /^running PostHog v1 \(commit aaaaaaaaaaaa\); 'npx tsx scripts\/upgrade\.mts --to <version>' moves it$/,
    )
    expect(describeVersion({ ...frozen, ref: A, kind: 'commit' })).toMatch(
      /^running PostHog commit aaaaaaaaaaaa;/,
    )
  })
  it('pins both image tags for the env file Compose reads', () => {
    const cfg = {
      appTag: 'latest',
      nodeTag: 'latest',
      raw: { POSTHOG_APP_TAG: 'latest', DOMAIN: 'x.example' },
    }
    expect(pinnedConfig(cfg, frozen)).toEqual({
      appTag: A,
      nodeTag: B,
      raw: { POSTHOG_APP_TAG: A, POSTHOG_NODE_TAG: B, DOMAIN: 'x.example' },
    })
  })
})
