// Compose's interpolation of one string (lib/stack/compose.mts interpolate): every operator,
// nesting, escapes, and text that is no reference.
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { interpolate } from '../../../lib/stack/compose.mts'

const D = '$' // Compose's own ${VAR} syntax, inside plain strings on purpose

describe('interpolate', () => {
  it('interpolates like Compose', () => {
    const env = { A: 'x', EMPTY: '' }
    expect(interpolate(`${D}A:${D}{A}-${D}{B:-def}-${D}{EMPTY:-d2}-${D}{EMPTY-d3}-${D}${D}A`, env)).toBe(
      'x:x-def-d2--$A',
    )
    expect(
      interpolate(`${D}{REGISTRY_URL}-node:${D}{POSTHOG_NODE_TAG:-latest}`, {
        REGISTRY_URL: 'posthog/posthog',
      }),
    ).toBe('posthog/posthog-node:latest')
  })

  it('takes the alternative of :+ when set and not empty, of + when set', () => {
    const env = { A: 'x', EMPTY: '' }
    expect(interpolate(`[${D}{A:+alt}][${D}{EMPTY:+alt}][${D}{UNSET:+alt}]`, env)).toBe('[alt][][]')
    expect(interpolate(`[${D}{A+alt}][${D}{EMPTY+alt}][${D}{UNSET+alt}]`, env)).toBe('[alt][alt][]')
    expect(interpolate(`${D}{A:+${D}{A}-${D}{B:-b}}`, env)).toBe('x-b')
  })

  it('refuses :? without a value and ? when unset, as Compose does', () => {
    const env = { A: 'x', EMPTY: '' }
    expect(interpolate(`${D}{A:?need A}/${D}{EMPTY?need it}`, env)).toBe('x/')
    expect(() => interpolate(`${D}{EMPTY:?need EMPTY}`, env)).toThrow(
      new UsageError('required variable EMPTY is missing a value: need EMPTY'),
    )
    expect(() => interpolate(`${D}{UNSET?}`, env)).toThrow('required variable UNSET is missing a value')
    expect(() => interpolate(`${D}{A:-${D}{UNSET:?inner}}`, env)).not.toThrow()
    expect(() => interpolate(`${D}{UNSET:-${D}{UNSET:?inner}}`, env)).toThrow(/: inner$/)
  })

  it('leaves text that is no reference as it is', () => {
    expect(interpolate(`cost: 5${D} ${D}1 ${D}{ ${D}{A:x} ${D}{A:-open`, { A: 'x' })).toBe(
      `cost: 5${D} ${D}1 ${D}{ ${D}{A:x} ${D}{A:-open`,
    )
    expect(interpolate('plain', {})).toBe('plain')
  })
})
