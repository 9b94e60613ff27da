import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultLogFiles, logFilesToScan, namedLogFiles } from '../../../lib/monitor/doctor-logs.mts'
import { scratchDir } from '../../helpers/common.ts'

describe('the log files doctor scans', () => {
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
