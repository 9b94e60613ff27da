import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEFAULT_DISK_THRESHOLDS } from '../../../lib/core/disk.mts'
import {
  defaultLogFiles,
  doctorReading,
  logFilesToScan,
  namedLogFiles,
} from '../../../lib/monitor/doctor-input.mts'
import { scratchDir } from '../../helpers/common.ts'

const flags = { since: '1h', tail: '300', 'disk-warning': '15%,10GiB', 'disk-critical': '5%,3GiB' }

describe('what doctor reads', () => {
  it('takes a duration or an RFC 3339 time for --since, a whole number for --tail', () => {
    expect(doctorReading(flags)).toEqual({ since: '1h', tail: 300, diskThresholds: DEFAULT_DISK_THRESHOLDS })
    expect(doctorReading({ ...flags, since: '2026-11-25T12:00:00.5+01:00' }).since).toBe(
      '2026-11-25T12:00:00.5+01:00',
    )
    expect(() => doctorReading({ ...flags, tail: '0' })).toThrow('--tail=0 must be a whole number above 0')
    expect(() => doctorReading({ ...flags, tail: '1.5' })).toThrow(/^--tail=1.5/)
    expect(() => doctorReading({ ...flags, since: 'yesterday' })).toThrow(
      /^--since=yesterday must be a duration/,
    )
    expect(() => doctorReading({ ...flags, 'disk-critical': 'x' })).toThrow(/--disk-critical/)
  })

  it('scans frpc’s log in FRP_LOG_DIR when it is there, and the named logs, which must be readable', () => {
    const dir = scratchDir('doctor-logs-')
    expect(defaultLogFiles({ FRP_LOG_DIR: dir }, 'linux')).toEqual([])
    const frpc = path.join(dir, 'frpc.log')
    fs.writeFileSync(frpc, '')
    expect(defaultLogFiles({ FRP_LOG_DIR: dir }, 'linux')).toEqual([frpc])
    const nginx = path.join(dir, 'error.log')
    fs.writeFileSync(nginx, '')
    expect(namedLogFiles([nginx])).toEqual([nginx])
    expect(() => namedLogFiles([path.join(dir, 'typo.log')])).toThrow(/typo.log cannot be read \(ENOENT\)/)
    expect(() => namedLogFiles([dir])).toThrow(/cannot be read \(not a file\)/)
    expect(logFilesToScan([nginx, nginx])).toEqual(expect.arrayContaining([nginx]))
  })
})
