import { describe, expect, it } from 'vitest'
import { ensureSystemUser, readableBy, useraddArgs } from '../../../lib/tunnel/system-user.mts'

describe('the frps system user', () => {
  it('is a system user without a home or a login shell', () => {
    expect(useraddArgs('frps')).toEqual([
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      'frps',
    ])
  })

  it('is only shown without systemd, and then owns nothing', async () => {
    const said: string[] = []
    expect(await ensureSystemUser('frps', 'none', (l) => said.push(l))).toBeUndefined()
    expect(said).toEqual([
      'would run (as root, with systemd): useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin frps',
    ])
    expect(() => readableBy(undefined, '/nonexistent/file')).not.toThrow()
  })
})
