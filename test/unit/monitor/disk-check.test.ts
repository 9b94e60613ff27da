import { describe, expect, it } from 'vitest'
import { DEFAULT_DISK_THRESHOLDS, type DiskSpace } from '../../../lib/core/disk.mts'
import { diskChecksFor, diskThresholds } from '../../../lib/monitor/disk-check.mts'
import { scratchDir } from '../../helpers/common.ts'

const GiB = 1024 ** 3

describe('the disk checks', () => {
  const t = diskThresholds({ 'disk-warning': '15%,10GiB', 'disk-critical': '5%,3GiB' })
  const space = (freeGiB: number): DiskSpace => ({ free: freeGiB * GiB, total: 100 * GiB })

  it('reads --disk-warning and --disk-critical', () => {
    expect(t).toEqual(DEFAULT_DISK_THRESHOLDS)
    expect(() => diskThresholds({ 'disk-warning': 'lots', 'disk-critical': '5%' })).toThrow(/--disk-warning/)
  })

  it('checks STACK_DIR and Docker’s data apart when they are on different disks', () => {
    const dir = scratchDir('disk-check-')
    const checks = diskChecksFor(dir, space(8), { rootDir: '/nonexistent-docker-root', desktop: false }, t)
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['stack-disk', 'WARNING'],
      ['docker-disk', 'UNKNOWN'],
    ])
    expect(checks[0]!.summary).toMatch(/on .*: free some \(npx tsx scripts\/doctor.mts names/)
  })

  it('makes one check of a shared disk, and says when docker does not answer', () => {
    const dir = scratchDir('disk-check-')
    const shared = diskChecksFor(dir, space(50), { rootDir: dir, desktop: false }, t)
    expect(shared.map((c) => [c.name, c.status])).toEqual([['disk', 'OK']])
    expect(shared[0]!.summary).toMatch(/ and STACK_DIR$/)
    const noDocker = diskChecksFor(dir, space(2), new Error('timed out after 10 s'), t)
    expect(noDocker).toEqual([
      expect.objectContaining({ name: 'stack-disk', status: 'CRITICAL' }),
      { name: 'docker-disk', status: 'UNKNOWN', summary: 'docker does not answer: timed out after 10 s' },
    ])
  })
})
