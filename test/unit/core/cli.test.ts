import { describe, expect, it } from 'vitest'
import {
  commandLogLine,
  MAX_DURATION_MS,
  parseDuration,
  parseFlags,
  printable,
  redact,
  registerSecret,
  UsageError,
} from '../../../lib/core/cli.mts'

const spec = {
  usage: 'x',
  summary: 'test',
  flags: {
    timeout: { type: 'string' as const, env: 'X_TIMEOUT', default: '20m', help: 't' },
    yes: { type: 'boolean' as const, env: 'X_YES', help: 'y' },
    'log-dir': { type: 'string' as const, env: 'X_LOG_DIR', path: true, help: 'l' },
    'log-file': { type: 'string' as const, multiple: true, path: true, help: 'f' },
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
  it('refuses a path flag holding a line break or $, from argv or the environment', () => {
    expect(parseFlags(spec, ['--log-dir', '/var/log/my frp'], {})['log-dir']).toBe('/var/log/my frp')
    for (const bad of ['/var/log/frp\nExecStartPre=/bin/evil', '/var/log/$HOME', '/tmp/a\rb']) {
      expect(() => parseFlags(spec, ['--log-dir', bad], {})).toThrow(UsageError)
      expect(() => parseFlags(spec, [], { X_LOG_DIR: bad })).toThrow(
        /^X_LOG_DIR=".*" holds a line break or '\$'/,
      )
      expect(() => parseFlags(spec, ['--log-file', '/ok', '--log-file', bad], {})).toThrow(
        /^--log-file=".*" holds a line break or '\$'/,
      )
    }
    // Only path flags: other values may hold a $ (a URL query, a template).
    expect(parseFlags(spec, ['--timeout', '$x'], {}).timeout).toBe('$x')
  })
})

describe('redact', () => {
  it('masks registered secrets', () => {
    registerSecret('s3cr3t-value')
    expect(redact('token s3cr3t-value!')).toBe('token ***!')
  })

  it('masks credentials the toolkit never saw', () => {
    const cases: [string, string][] = [
      ['connect redis://:hunter22@redis7:6379/0 failed', 'connect redis://***@redis7:6379/0 failed'],
      ['fetch https://ghp_abcdef123456@github.com/x.git', 'fetch https://***@github.com/x.git'],
      ['postgres://posthog:pw1234@db/posthog', 'postgres://***@db/posthog'],
      ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x', 'Authorization: Bearer ***'],
      ['"authorization":"Basic dXNlcjpwYXNz"', '"authorization":"Basic ***"'],
      ['Cookie: sessionid=abc123; csrftoken=def456', 'Cookie: sessionid=***; csrftoken=***'],
      [
        'Set-Cookie: sessionid=abc123; Path=/; HttpOnly; Max-Age=3600',
        'Set-Cookie: sessionid=***; Path=/; HttpOnly; Max-Age=3600',
      ],
      ['SECRET_KEY=abcdef boot', 'SECRET_KEY=*** boot'],
      ['CLICKHOUSE_PASSWORD="two words"', 'CLICKHOUSE_PASSWORD="***"'],
      [
        'AWS_SECRET_ACCESS_KEY=xyz OBJECT_STORAGE_KEY=abc',
        'AWS_SECRET_ACCESS_KEY=*** OBJECT_STORAGE_KEY=***',
      ],
      ['auth token=abcdef123456 rejected', 'auth token=*** rejected'],
      ['"password": "s3cr3t!"', '"password": "***"'],
      ["ENCRYPTION_SALT_KEYS='0123abcd'", "ENCRYPTION_SALT_KEYS='***'"],
    ]
    for (const [line, masked] of cases) expect(redact(line)).toBe(masked)
  })

  it('leaves alone what only resembles a secret', () => {
    for (const line of [
      'https://ph.example.com/_health answers ok',
      'FRP_TOKEN must be at least 32 characters',
      '--token-file=/etc/frp/frps.token',
      'FRP_TOKEN_FILE=/etc/frp/frps.token',
      'set SESSION_RECORDING_API_REDIS_HOST=redis7',
      'mail me@example.com',
      'ssh://git@github.com/PostHog/posthog.git',
      'pass --accept-new-secrets if you mean it',
    ])
      expect(redact(line)).toBe(line)
  })
})

describe('printable', () => {
  it('drops escape sequences and shows other control characters', () => {
    const title = '\x1b]0;pwned\x07'
    const clear = '\x1b[2J\x1b[H'
    expect(printable(`GET /${title}${clear}x \x1b[31mred\x1b[0m`)).toBe('GET /x red')
    expect(printable('a\rb\x08c\x00d\u202eevil')).toBe('a\\u000db\\u0008c\\u0000d\\u202eevil')
    expect(printable('line 1\nline 2\tend')).toBe('line 1\nline 2\tend')
    expect(printable('line 1\nline 2', false)).toBe('line 1\\nline 2')
    // Still valid inside a JSON string.
    expect(JSON.parse(printable(JSON.stringify({ a: 'x\u0085y\u202e' })))).toEqual({ a: 'x\u0085y\u202e' })
  })

  it('--debug command lines are masked and on one line', () => {
    registerSecret('deb0g-s3cret')
    expect(commandLogLine(['docker', 'run', '-e', 'X=deb0g-s3cret', 'a\nb'])).toBe(
      "$ docker run -e X=*** 'a\\nb'",
    )
  })
})

describe('parseDuration', () => {
  it('parses durations', () => {
    expect(parseDuration('20m', 'T')).toBe(1_200_000)
    expect(parseDuration('90', 'T')).toBe(90_000)
    expect(() => parseDuration('soon', 'T')).toThrow(UsageError)
    expect(() => parseDuration('0s', 'T')).toThrow(/greater than zero/)
  })
  it('refuses what a timer cannot hold, naming the maximum', () => {
    expect(parseDuration('596h', 'T')).toBeLessThanOrEqual(MAX_DURATION_MS)
    expect(() => parseDuration('600h', 'HEALTH_TIMEOUT')).toThrow(
      /^HEALTH_TIMEOUT=600h is longer than a timer can wait: at most 596h/,
    )
    expect(() => parseDuration(String(2 ** 31), 'T')).toThrow(UsageError)
  })
})
