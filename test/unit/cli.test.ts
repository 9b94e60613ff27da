import { describe, expect, it } from 'vitest'
import { parseDuration, parseFlags, redact, registerSecret, UsageError } from '../../lib/cli.mts'

const spec = {
  usage: 'x',
  summary: 'test',
  flags: {
    timeout: { type: 'string' as const, env: 'X_TIMEOUT', default: '20m', help: 't' },
    yes: { type: 'boolean' as const, env: 'X_YES', help: 'y' },
  },
}

describe('parseFlags', () => {
  it('prefers the flag, then the environment, then the default', () => {
    expect(parseFlags(spec, ['--timeout', '5m'], { X_TIMEOUT: '9m' }).timeout).toBe('5m')
    expect(parseFlags(spec, [], { X_TIMEOUT: '9m' }).timeout).toBe('9m')
    expect(parseFlags(spec, [], {}).timeout).toBe('20m')
    expect(parseFlags(spec, [], { X_YES: 'true' }).yes).toBe(true)
    expect(parseFlags(spec, [], {}).yes).toBe(false)
  })
  it('rejects unknown flags, stray arguments and bad booleans as usage errors', () => {
    expect(() => parseFlags(spec, ['--nope'], {})).toThrow(UsageError)
    expect(() => parseFlags(spec, ['stray'], {})).toThrow(/unexpected argument/)
    expect(() => parseFlags(spec, [], { X_YES: 'maybe' })).toThrow(/X_YES=maybe/)
  })
})

describe('helpers', () => {
  it('redacts registered secrets', () => {
    registerSecret('s3cr3t-value')
    expect(redact('token=s3cr3t-value!')).toBe('token=***!')
  })
  it('parses durations', () => {
    expect(parseDuration('20m', 'T')).toBe(1_200_000)
    expect(parseDuration('90', 'T')).toBe(90_000)
    expect(() => parseDuration('soon', 'T')).toThrow(UsageError)
  })
})
