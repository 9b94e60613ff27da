import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RuntimeFailure } from '../../../lib/core/cli.mts'
import { nginxControl, nginxError, requireNginx, testNginx } from '../../../lib/tunnel/nginx-control.mts'
import { scratchDir } from '../../helpers/common.ts'

let dir: string
let fakeNginx: string
let calls: string

beforeAll(() => {
  dir = scratchDir('nginx-control-')
  calls = path.join(dir, 'calls.log')
  fakeNginx = path.join(dir, 'nginx')
  // `-t` fails the way nginx does when FAKE_NGINX_FAIL is set; every call is recorded
  fs.writeFileSync(
    fakeNginx,
    `#!/bin/sh
echo "$*" >> "${calls}"
if [ -n "$FAKE_NGINX_FAIL" ]; then
  echo 'nginx: [emerg] unknown directive "bogus" in /etc/nginx/sites-enabled/x.conf:3' >&2
  echo 'nginx: configuration file /etc/nginx/nginx.conf test failed' >&2
  exit 1
fi
`,
    { mode: 0o755 },
  )
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const recorded = () => fs.readFileSync(calls, 'utf8').trim().split('\n')

describe('nginx control', () => {
  it('tests and reloads a private nginx with its -c config', async () => {
    fs.rmSync(calls, { force: true })
    const control = nginxControl(fakeNginx, '/srv/nginx/nginx.conf')
    expect(control.testArgs).toEqual(['-t', '-c', '/srv/nginx/nginx.conf'])
    expect(await testNginx(control, '/srv/site.conf')).toBeUndefined()
    await control.reload()
    expect(recorded()).toEqual(['-t -c /srv/nginx/nginx.conf', '-c /srv/nginx/nginx.conf -s reload'])
  })

  it('tests the system nginx with plain -t', () => {
    expect(nginxControl('nginx').testArgs).toEqual(['-t'])
  })

  it("reports nginx's complaint in one line and says the previous files are back", async () => {
    process.env.FAKE_NGINX_FAIL = '1'
    try {
      const failure = await testNginx(nginxControl(fakeNginx), '/etc/nginx/sites-available/x.conf')
      expect(failure).toBeInstanceOf(RuntimeFailure)
      expect(failure!.message).toBe(
        'nginx rejected the new site /etc/nginx/sites-available/x.conf (unknown directive "bogus" in /etc/nginx/sites-enabled/x.conf:3); the previous files are back and nginx keeps serving',
      )
    } finally {
      delete process.env.FAKE_NGINX_FAIL
    }
  })

  it('says to install nginx when there is none', async () => {
    const missing = path.join(dir, 'no-nginx')
    expect((await testNginx(nginxControl(missing), '/x.conf'))?.fix).toMatch(/apt-get install nginx/)
    await expect(requireNginx(missing)).rejects.toThrow(/nginx is not installed \(.*no-nginx -v failed\)/)
    await expect(requireNginx(fakeNginx)).resolves.toBeUndefined()
  })

  it('takes the first meaningful line of nginx -t output', () => {
    expect(nginxError('nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n')).toBe(
      'nginx -t failed',
    )
    expect(nginxError('nginx: [emerg] open() "/x" failed (2: No such file)\n')).toBe(
      'open() "/x" failed (2: No such file)',
    )
  })
})
