// remote/certbot.mts as a black box, with a stand-in certbot that records its arguments (the real
// certbot against Pebble runs in public-path.test.ts): bad input ends in exit 2 with one line and
// nothing done; no terminal and no --yes means no request; a certbot failure is one line, exit 1.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { scratchDir } from '../helpers/common.ts'

const SECRET = 'frp-token-that-must-never-show-0123456789'
let dir: string
let fakeCertbot: string
let callLog: string

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'remote/certbot.mts', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    input: '',
    env: { ...process.env, FRP_TOKEN: SECRET, DOMAIN: '', CERTBOT_EMAIL: '', ...env },
  })
  expect(res.stdout + res.stderr).not.toContain(SECRET)
  return res
}

const common = () => [
  '--config-dir',
  path.join(dir, 'le'),
  '--work-dir',
  path.join(dir, 'work'),
  '--logs-dir',
  path.join(dir, 'logs'),
  '--nginx-server-root',
  path.join(dir, 'nginx'),
  '--certbot-bin',
  fakeCertbot,
  '--skip-install',
]

beforeAll(() => {
  dir = scratchDir('certbot-cli-')
  callLog = path.join(dir, 'calls.log')
  fakeCertbot = path.join(dir, 'certbot')
  // `plugins` lists nginx like certbot 2.1.0 does; anything else is logged, and fails the way a
  // refused HTTP-01 validation does when FAKE_CERTBOT_FAIL is set.
  fs.writeFileSync(
    fakeCertbot,
    `#!/bin/sh
if [ "$1" = plugins ]; then printf '* nginx\\nDescription: Nginx Web Server plugin\\n'; exit 0; fi
echo "$*" >> "${callLog}"
if [ -n "$FAKE_CERTBOT_FAIL" ]; then
  echo 'Saving debug log to /var/log/letsencrypt/letsencrypt.log' >&2
  printf '  Domain: ph.example.com\\n  Type:   connection\\n  Detail: 203.0.113.9: Fetching http://ph.example.com/.well-known/acme-challenge/x: Timeout during connect\\n' >&2
  exit 1
fi
`,
    { mode: 0o755 },
  )
})

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('remote/certbot.mts', () => {
  it.each([
    [['--domain', 'not a host', '--email', 'a@example.com'], /domain 'not a host' is not a hostname/],
    [['--domain', 'ph.example.com', '--email', 'nobody'], /e-mail 'nobody' is not an address/],
    [['--domain', 'ph.example.com'], /no e-mail: pass --email/],
    [['--email', 'a@example.com'], /no domain: pass --domain/],
    [
      ['--domain', 'ph.example.com', '--email', 'a@example.com', '--https-port', '70000'],
      /--https-port 70000 is not a port/,
    ],
    [
      ['--domain', 'ph.example.com', '--email', 'a@example.com', '--acme-server', 'http://x/dir'],
      /must be an https:\/\/ URL/,
    ],
    [['--domain', 'ph.example.com', '--email', 'a@example.com', '--frobnicate'], /--frobnicate/],
  ])('exits 2 with one line for %j', (args, message) => {
    const res = run([...args, ...common()])
    expect(res.status).toBe(2)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(message)
    expect(fs.existsSync(callLog)).toBe(false)
    expect(fs.existsSync(path.join(dir, 'le'))).toBe(false)
  })

  it('does not agree to the terms without a terminal unless --yes is given', () => {
    const res = run(['--domain', 'ph.example.com', '--email', 'a@example.com', ...common()])
    expect(res.status).toBe(2)
    expect(res.stderr).toMatch(/pass --yes/)
    expect(fs.existsSync(callLog)).toBe(false)
  })

  it('reports a failed issuance in one line with the CA reason, exit 1', () => {
    const res = run(['--domain', 'ph.example.com', '--email', 'a@example.com', '--yes', ...common()], {
      FAKE_CERTBOT_FAIL: '1',
    })
    expect(res.status).toBe(1)
    const lines = res.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^certbot: error: certbot --nginx for ph\.example\.com failed: connection: 203\.0\.113\.9: .*Timeout during connect; the HTTP site is unchanged/,
    )
    expect(fs.readFileSync(callLog, 'utf8')).toMatch(
      /^--nginx -d ph\.example\.com --non-interactive --agree-tos/,
    )
  })

  it('keeps the replaced deploy hook as a copy certbot will not run (not executable)', () => {
    const hooks = path.join(dir, 'le', 'renewal-hooks', 'deploy')
    for (const nginxBin of ['/usr/sbin/nginx', 'nginx']) {
      const res = run(
        [...common(), '--domain', 'hook.example.com', '--email', 'me@example.com', '--yes'].concat([
          '--skip-renew-check',
          '--nginx-bin',
          nginxBin,
        ]),
      )
      expect(res.stderr).toMatch(/live\/hook\.example\.com\/cert\.pem is missing/) // the stand-in issues nothing
    }
    const files = fs.readdirSync(hooks)
    const hook = '50-posthog-homelab-reload-nginx'
    expect(fs.statSync(path.join(hooks, hook)).mode & 0o111).not.toBe(0)
    expect(fs.readFileSync(path.join(hooks, hook), 'utf8')).toContain("'nginx' ")
    const copies = files.filter((f) => f.startsWith(`${hook}.bak-`))
    expect(copies.length).toBeGreaterThan(0)
    for (const f of copies) expect(fs.statSync(path.join(hooks, f)).mode & 0o111).toBe(0)
  })

  it('says what to do when certbot is missing', () => {
    const args = ['--domain', 'ph.example.com', '--email', 'a@example.com', '--yes', ...common()]
    args[args.indexOf(fakeCertbot)] = path.join(dir, 'no-such-certbot')
    const res = run(args)
    expect(res.status).toBe(1)
    expect(res.stderr.trim()).toMatch(
      /with its nginx plugin is not available; install certbot and python3-certbot-nginx/,
    )
  })
})
