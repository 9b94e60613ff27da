import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseMemory } from '../../../lib/core/env.mts'
import {
  checkComposeVersion,
  checkDisk,
  checkMemory,
  estimateStackMemory,
  failedChecks,
  findDocker,
  formatPreflight,
  freeDiskBytes,
  type PreflightInput,
  parseVersion,
  runPreflight,
} from '../../../lib/stack/preflight.mts'
import { scratchDir } from '../../helpers/common.ts'

const GiB = 1024 ** 3
const fakeDocker = path.resolve(process.cwd(), 'test/fakes/docker')

const defaults: PreflightInput = {
  stackDir: os.tmpdir(),
  disabledServices: [
    'temporal-ui',
    'temporal-admin-tools',
    'livestream',
    'cymbal',
    'replay-capture',
    'cyclotron-janitor',
    'property-defs-rs',
  ],
  memoryLimits: { clickhouse: '2g', web: '1.5g', worker: '1.5g', elasticsearch: '512m' },
}

describe('pure checks', () => {
  it('parses and compares Compose versions', () => {
    expect(parseVersion('2.29.7')).toEqual([2, 29, 7])
    expect(parseVersion('v2.24.0-desktop.1\n')).toEqual([2, 24, 0])
    // !override arrived in compose 2.24.4; 2.24.0 to 2.24.3 ignore it and publish the proxy publicly.
    for (const v of ['2.24.0', '2.24.3', 'v2.24.3-desktop.1']) {
      expect(checkComposeVersion(v).ok, v).toBe(false)
      expect(checkComposeVersion(v).message).toMatch(/every interface/)
    }
    expect(checkComposeVersion('2.24.4').ok).toBe(true)
    expect(checkComposeVersion('2.30.1').ok).toBe(true)
    expect(checkComposeVersion('5.3.0').ok).toBe(true)
    const old = checkComposeVersion('2.20.2')
    expect(old.ok).toBe(false)
    expect(old.message).toContain('2.20.2')
    expect(old.fix).toContain('2.24.4')
    expect(checkComposeVersion(undefined).message).toMatch(/not installed/)
  })

  it('reads memory sizes (MEMORY_LIMITS values)', () => {
    expect(parseMemory('2g')).toBe(2 * GiB)
    expect(parseMemory('1.5g')).toBe(1.5 * GiB)
    expect(parseMemory('512m')).toBe(512 * 1024 ** 2)
  })

  it('estimates the trimmed stack near the seed measurement, with numbers in the message', () => {
    const trimmed = estimateStackMemory(defaults)
    expect(trimmed / GiB).toBeGreaterThan(6.5)
    expect(trimmed / GiB).toBeLessThan(7.7)
    expect(estimateStackMemory({ ...defaults, disabledServices: [] })).toBeGreaterThan(trimmed)
    // A lower limit lowers the estimate; a limit above typical use does not raise it.
    expect(
      estimateStackMemory({ ...defaults, memoryLimits: { ...defaults.memoryLimits, web: '512m' } }),
    ).toBe(trimmed - 1500 * 1024 ** 2 + 512 * 1024 ** 2)
    expect(estimateStackMemory(defaults, ['web', 'db'])).toBe((1500 + 150) * 1024 ** 2)
    const low = checkMemory(4 * GiB, trimmed)
    expect(low.ok).toBe(false)
    expect(low.message).toMatch(/4\.0 GiB.*7\.\d GiB/)
    expect(low.fix).toMatch(/raise Docker Desktop's memory limit .* to \d+ GB.*DISABLED_SERVICES/)
    // Docker Desktop's 8 GB VM reports about 7.7 GiB: enough for the trimmed stack.
    expect(checkMemory(7.7 * GiB, trimmed).ok).toBe(true)
  })

  it('compares free disk with numbers', () => {
    const r = checkDisk(2 * GiB, 15 * GiB, '/x/stack')
    expect(r.ok).toBe(false)
    expect(r.message).toContain('2.0 GiB free')
    expect(r.message).toContain('15.0 GiB')
    expect(r.fix).toContain('13.0 GiB')
    expect(checkDisk(20 * GiB, 15 * GiB, '/x').ok).toBe(true)
  })

  it('formats one line per check, the fix on failed ones', () => {
    const lines = formatPreflight([checkDisk(1, 2, '/s'), checkComposeVersion('2.29.0')])
    expect(lines[0]).toMatch(/^FAIL disk: .*; fix: /)
    expect(lines[1]).toMatch(/^ok {3}compose-version: /)
    expect(formatPreflight([checkDisk(1, 2, '/s'), checkComposeVersion('2.29.0')], true)).toHaveLength(1)
  })

  it('measures free disk from the nearest existing parent', () => {
    expect(freeDiskBytes(path.join(os.tmpdir(), 'does', 'not', 'exist'))).toBeGreaterThan(0)
  })
})

describe('runPreflight with the fake docker', () => {
  let dir: string
  // zx keeps a reference to the process.env object: edit it in place, never replace it.
  const keys = ['DOCKER_BIN', 'FAKE_DOCKER_SCENARIO'] as const
  beforeEach(() => {
    dir = scratchDir('preflight-')
    process.env.DOCKER_BIN = fakeDocker
  })
  afterEach(() => {
    for (const k of keys) delete process.env[k]
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const scenario = (s: object) => {
    const file = path.join(dir, 'scenario.json')
    fs.writeFileSync(file, JSON.stringify(s))
    process.env.FAKE_DOCKER_SCENARIO = file
  }
  const input = () => ({ ...defaults, stackDir: path.join(dir, 'stack') })

  it('passes on a healthy 16 GB Docker with Compose 2.29', async () => {
    scenario({})
    const results = await runPreflight(input(), { minFreeDiskBytes: 1 })
    expect(results.map((r) => r.name)).toEqual([
      'docker-cli',
      'docker-daemon',
      'compose-version',
      'memory',
      'disk',
    ])
    expect(failedChecks(results)).toEqual([])
  })

  it('reports a missing CLI and stops there', async () => {
    process.env.DOCKER_BIN = path.join(dir, 'no-docker')
    const results = await runPreflight(input())
    expect(results).toHaveLength(1)
    expect(results[0]).toMatchObject({ name: 'docker-cli', ok: false })
    expect(findDocker('surely-no-such-binary-here', '/usr/bin:/bin')).toBeUndefined()
  })

  it('reports a stopped daemon, an old Compose, too little memory and a full disk', async () => {
    scenario({ daemon: false, composeVersion: '2.20.2' })
    const results = await runPreflight(input(), { minFreeDiskBytes: 1e18 })
    let failed = failedChecks(results)
    expect(failed.map((r) => r.name)).toEqual(['docker-daemon', 'compose-version', 'disk'])
    expect(failed[0]!.message).toContain('Cannot connect to the Docker daemon')
    // docker info still prints its (zeroed) figures without a daemon: memory is a knock-on, not
    // "Docker can use 0 MiB".
    expect(results.find((r) => r.name === 'memory')).toMatchObject({ ok: true, skipped: true })
    expect(formatPreflight(results).join('\n')).not.toMatch(/0 MiB/)
    expect(formatPreflight(results)).toContain('skip memory: not checked: the Docker daemon does not answer')
    scenario({ memTotal: 4 * GiB })
    failed = failedChecks(await runPreflight(input(), { minFreeDiskBytes: 1 }))
    expect(failed.map((r) => r.name)).toEqual(['memory'])
  })
})
