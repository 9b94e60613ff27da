// remote/certbot.mts as a black box, with stand-ins for certbot (records its arguments; `certonly`
// puts a self-signed certificate where certbot would) and nginx (records its arguments); the real
// certbot against Pebble and the real nginx run in public-path.test.ts. Bad input ends in exit 2
// with one line and nothing done; no terminal and no --yes means no request; no site from
// frps-setup, or a failed issuance, is one line, exit 1.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildNginxSite } from '../../lib/tunnel/nginx-site.mts'
import { scratchDir } from '../helpers/common.ts'

const SECRET = 'frp-token-that-must-never-show-0123456789'
const DOMAIN = 'ph.example.com'
let dir: string
let fakeCertbot: string
let fakeNginx: string
let callLog: string
let nginxLog: string
let sites: string

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
  '--sites-available-dir',
  sites,
  '--sites-enabled-dir',
  '',
  '--certbot-bin',
  fakeCertbot,
  '--nginx-bin',
  fakeNginx,
  '--skip-install',
]

const args = (domain = DOMAIN) => ['--domain', domain, '--email', 'a@example.com', ...common()]

function writeSite(domain: string): string {
  const file = path.join(sites, `${domain}.conf`)
  fs.mkdirSync(sites, { recursive: true })
  fs.writeFileSync(file, buildNginxSite({ domain, upstreamPort: 12080, acmeWebroot: path.join(dir, 'acme') }))
  return file
}

beforeAll(() => {
  dir = scratchDir('certbot-cli-')
  sites = path.join(dir, 'sites-available')
  callLog = path.join(dir, 'calls.log')
  nginxLog = path.join(dir, 'nginx.log')
  fakeCertbot = path.join(dir, 'certbot')
  fakeNginx = path.join(dir, 'nginx')
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
    ].concat([
      '-out',
      cert,
      '-days',
      '90',
      '-subj',
      '/CN=hook.example.com',
      '-addext',
      'subjectAltName=DNS:hook.example.com',
    ]),
    { stdio: 'ignore', timeout: 30_000 },
  )
  // `plugins` lists webroot like certbot 2.1.0 does; anything else is logged; `certonly` fails the
  // way a refused HTTP-01 validation does when FAKE_CERTBOT_FAIL is set, else it "issues" cert.pem.
  fs.writeFileSync(
    fakeCertbot,
    `#!/bin/sh
if [ "$1" = plugins ]; then printf '* webroot\\nDescription: Place files in webroot directory\\n'; exit 0; fi
echo "$*" >> "${callLog}"
if [ -n "$FAKE_CERTBOT_FAIL" ]; then
  echo 'Saving debug log to /var/log/letsencrypt/letsencrypt.log' >&2
  printf '  Domain: ph.example.com\\n  Type:   connection\\n  Detail: 203.0.113.9: Fetching http://ph.example.com/.well-known/acme-challenge/x: Timeout during connect\\n' >&2
  exit 1
fi
if [ "$1" = certonly ]; then
  while [ $# -gt 0 ]; do
    case "$1" in --config-dir) cfg=$2 ;; --cert-name) name=$2 ;; esac
    shift
  done
  mkdir -p "$cfg/live/$name"
  cp "${cert}" "$cfg/live/$name/cert.pem"; cp "${cert}" "$cfg/live/$name/fullchain.pem"; cp "${key}" "$cfg/live/$name/privkey.pem"
fi
`,
    { mode: 0o755 },
  )
  fs.writeFileSync(fakeNginx, `#!/bin/sh\necho "$*" >> "${nginxLog}"\n`, { mode: 0o755 })
})

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('remote/certbot.mts', () => {
  it.each([
    [['--domain', 'not a host', '--email', 'a@example.com'], /domain 'not a host' is not a hostname/],
    [['--domain', DOMAIN, '--email', 'nobody'], /e-mail 'nobody' is not an address/],
    [['--domain', DOMAIN], /no e-mail: pass --email/],
    [['--email', 'a@example.com'], /no domain: pass --domain/],
    [
      ['--domain', DOMAIN, '--email', 'a@example.com', '--acme-server', 'http://x/dir'],
      /must be an https:\/\/ URL/,
    ],
    [
      ['--domain', DOMAIN, '--email', 'a@example.com', '--staging', '--acme-server', 'https://x/dir'],
      /exclude/,
    ],
    [['--domain', DOMAIN, '--email', 'a@example.com', '--frobnicate'], /--frobnicate/],
  ])('exits 2 with one line for %j', (argv, message) => {
    const res = run([...argv, ...common()])
    expect(res.status).toBe(2)
    expect(res.stderr.trim().split('\n')).toHaveLength(1)
    expect(res.stderr).toMatch(message)
    expect(fs.existsSync(callLog)).toBe(false)
    expect(fs.existsSync(path.join(dir, 'le'))).toBe(false)
  })

  it('requests nothing without the site frps-setup writes, and says to run it', () => {
    const res = run([...args('nosite.example.com'), '--yes'])
    expect(res.status).toBe(1)
    expect(res.stderr.trim()).toMatch(
      /^certbot: error: no nginx site for nosite\.example\.com \(.*nosite\.example\.com\.conf is missing\).*run frps-setup with this --domain first/,
    )
    expect(fs.existsSync(callLog)).toBe(false)
  })

  it('requests nothing on a site an earlier version wrote (certbot --nginx edited): frps-setup takes it over first', () => {
    fs.mkdirSync(sites, { recursive: true })
    fs.writeFileSync(
      path.join(sites, 'old.example.com.conf'),
      'server {\n    listen 443 ssl; # managed by Certbot\n}\n',
    )
    const res = run([...args('old.example.com'), '--yes'])
    expect(res.status).toBe(1)
    expect(res.stderr.trim()).toMatch(
      /was not written by this version of frps-setup; re-run frps-setup first/,
    )
    expect(fs.existsSync(callLog)).toBe(false)
  })

  it('does not agree to the terms without a terminal unless --yes is given', () => {
    writeSite(DOMAIN)
    const res = run(args())
    expect(res.status).toBe(2)
    expect(res.stderr).toMatch(/pass --yes/)
    expect(fs.existsSync(callLog)).toBe(false)
  })

  it('reports a failed issuance in one line with the CA reason, exit 1, site untouched', () => {
    const site = writeSite(DOMAIN)
    const before = fs.readFileSync(site, 'utf8')
    const res = run([...args(), '--yes'], { FAKE_CERTBOT_FAIL: '1' })
    expect(res.status).toBe(1)
    const lines = res.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^certbot: error: certbot certonly for ph\.example\.com failed: connection: 203\.0\.113\.9: .*Timeout during connect; the nginx site is unchanged/,
    )
    expect(fs.readFileSync(callLog, 'utf8')).toMatch(
      new RegExp(
        `^certonly --webroot -w ${path.join(dir, 'acme')} --cert-name ph\\.example\\.com -d ph\\.example\\.com`,
      ),
    )
    expect(fs.readFileSync(site, 'utf8')).toBe(before)
    expect(fs.existsSync(nginxLog)).toBe(false)
  })

  it('then writes the https site, tests and reloads nginx; the replaced deploy hook is kept not executable', () => {
    const site = writeSite('hook.example.com')
    const hooks = path.join(dir, 'le', 'renewal-hooks', 'deploy')
    const hook = '50-posthog-homelab-reload-nginx'
    for (const conf of ['/etc/nginx/nginx.conf', path.join(dir, 'private/nginx.conf')]) {
      const res = run([...args('hook.example.com'), '--yes', '--skip-renew-check', '--nginx-conf', conf])
      expect(res.status, res.stderr).toBe(0)
      expect(fs.readFileSync(path.join(hooks, hook), 'utf8')).toContain(`-c '${conf}' -t -q`)
    }
    expect(fs.readFileSync(callLog, 'utf8').match(/^certonly .*hook\.example\.com/gm)).toHaveLength(1)
    expect(fs.readFileSync(site, 'utf8')).toContain(
      `ssl_certificate ${path.join(dir, 'le/live/hook.example.com/fullchain.pem')};`,
    )
    expect(fs.readFileSync(nginxLog, 'utf8').trim().split('\n')).toEqual([
      '-t -c /etc/nginx/nginx.conf',
      '-c /etc/nginx/nginx.conf -s reload',
    ])
    expect(fs.statSync(path.join(hooks, hook)).mode & 0o111).not.toBe(0)
    const copies = fs.readdirSync(hooks).filter((f) => f.startsWith(`${hook}.bak-`))
    expect(copies.length).toBeGreaterThan(0)
    for (const f of copies) expect(fs.statSync(path.join(hooks, f)).mode & 0o111).toBe(0)
  })

  it('says what to do when certbot is missing', () => {
    writeSite(DOMAIN)
    const argv = [...args(), '--yes']
    argv[argv.indexOf(fakeCertbot)] = path.join(dir, 'no-such-certbot')
    const res = run(argv)
    expect(res.status).toBe(1)
    expect(res.stderr.trim()).toMatch(
      /no-such-certbot is not available; install certbot, or drop --skip-install/,
    )
  })
})
