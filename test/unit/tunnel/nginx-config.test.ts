import { describe, expect, it } from 'vitest'
import { blank, block, comment, directive, renderNginx } from '../../../lib/tunnel/nginx-config.mts'

describe('renderNginx', () => {
  it('renders blocks four spaces per level, directives with their semicolon, comments and blank lines', () => {
    const text = renderNginx([
      comment('a site'),
      blank,
      block(
        'server',
        [],
        [directive('listen', ['80']), block('location', ['/'], [directive('return', ['204'])])],
      ),
    ])
    expect(text).toBe(
      [
        '# a site',
        '',
        'server {',
        '    listen 80;',
        '    location / {',
        '        return 204;',
        '    }',
        '}',
      ].join('\n'),
    )
  })

  it('takes quoted strings without their quote character inside', () => {
    expect(renderNginx([directive('add_header', ['X', '"max-age=1"', 'always'])])).toBe(
      'add_header X "max-age=1" always;',
    )
  })

  it('never renders a token that could end a directive or open a block', () => {
    expect(() => renderNginx([directive('add_header', ['X', 'a;b'])])).toThrow(/unsafe token/)
    expect(() => renderNginx([block('location', ['/ {'], [])])).toThrow(/unsafe token/)
    expect(() => renderNginx([directive('return', ['200', "'x' y'"])])).toThrow(/unsafe token/)
  })

  it('refuses a comment that spans lines', () => {
    expect(() => renderNginx([comment('one\ntwo')])).toThrow(/cannot span lines/)
  })
})
