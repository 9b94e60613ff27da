import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { logMaxBytes, rotateLog } from '../../../lib/monitor/log.mts'
import { scratchDir } from '../../helpers/common.ts'

describe('log rotation', () => {
  it('reads --log-max-mb as bytes; nothing but a number above 0', () => {
    expect(logMaxBytes('5')).toBe(5 * 1024 * 1024)
    expect(logMaxBytes('0.5')).toBe(512 * 1024)
    for (const bad of ['0', '-1', 'lots', ''])
      expect(() => logMaxBytes(bad)).toThrow(new UsageError(`--log-max-mb=${bad} must be a number above 0`))
  })

  it('moves the log to LOG.1 past the cap, keeping one old generation', () => {
    const log = path.join(scratchDir('rotate-'), 'health.log')
    expect(rotateLog(log, 10)).toBe(false) // no log yet
    fs.writeFileSync(log, '0123456789')
    expect(rotateLog(log, 10)).toBe(false)
    fs.appendFileSync(log, 'x')
    expect(rotateLog(log, 10)).toBe(true)
    expect(fs.existsSync(log)).toBe(false)
    expect(fs.readFileSync(`${log}.1`, 'utf8')).toBe('0123456789x')
    fs.writeFileSync(log, 'newer and longer')
    expect(rotateLog(log, 10)).toBe(true)
    expect(fs.readFileSync(`${log}.1`, 'utf8')).toBe('newer and longer')
  })
})
