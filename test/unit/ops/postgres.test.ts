// The commands run in the db container: pg_dump and pg_restore's arguments, the database names
// they accept, and the line a failure is reported with.
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { composePrefix } from '../../../lib/core/docker.mts'
import { pgDumpArgs, pgRestoreArgs, stderrLine } from '../../../lib/ops/postgres.mts'

describe('PostgreSQL in the db container', () => {
  it('dumps and restores one database in custom format, posthog by default', () => {
    const prefix = composePrefix('/stack')
    expect(pgDumpArgs('/stack')).toEqual([
      ...prefix,
      'exec',
      '-T',
      'db',
      'pg_dump',
      '-U',
      'posthog',
      '-Fc',
      'posthog',
    ])
    expect(pgRestoreArgs('/stack', 'temporal_visibility')).toEqual([
      ...prefix,
      ...['exec', '-T', 'db', 'pg_restore', '-U', 'posthog', '-d', 'temporal_visibility'],
      ...['--clean', '--if-exists', '--no-owner', '--exit-on-error'],
    ])
  })

  it('refuses a database name that could be read as an option or hold a quote', () => {
    for (const name of ['-c', 'a b', "x'y", ''])
      expect(() => pgDumpArgs('/stack', name), name).toThrow(UsageError)
  })

  it("reports a failure by stderr's last line, never by the data on stdout", () => {
    expect(stderrLine({ stderr: 'pg_dump: warning\npg_dump: error: connection refused\n\n' })).toBe(
      'pg_dump: error: connection refused',
    )
    expect(stderrLine({ stderr: '' })).toBe('no message')
  })
})
