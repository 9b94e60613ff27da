import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RuntimeFailure, UsageError } from '../../../lib/core/cli.mts'
import {
  block,
  buildNginxSite,
  directive,
  installNginxSite,
  recordedSettings,
  renderNginx,
} from '../../../lib/tunnel/nginx.mts'
import { scratchDir } from '../../helpers/common.ts'
import { hasBinary, makeNginx } from '../../helpers/public-path.ts'

const base = { domain: 'posthog.example.com', upstreamPort: 12080 }
const tls = {
  certificate: '/etc/letsencrypt/live/posthog.example.com/fullchain.pem',
  key: '/etc/letsencrypt/live/posthog.example.com/privkey.pem',
}

/** The server blocks of a rendered site, as text. */
function servers(site: string): string[] {
  return site.split(/\n(?=server \{)/).slice(1)
}

const lines = (text: string) => text.split('\n')

describe('buildNginxSite before a certificate exists', () => {
  const site = buildNginxSite(base)

  it('serves plain http only: the ACME challenge from the webroot, everything else into the tunnel', () => {
    expect(servers(site)).toHaveLength(1)
    for (const line of [
      '    listen 80;',
      '    listen [::]:80;',
      '    server_name posthog.example.com;',
      '    location ^~ /.well-known/acme-challenge/ {',
      '        root /var/www/posthog-homelab;',
      '        proxy_pass http://127.0.0.1:12080;',
    ])
      expect(lines(site)).toContain(line)
    const directives = lines(site).filter((l) => !l.startsWith('#'))
    expect(directives.join('\n')).not.toMatch(/ssl|443|return 301|Strict-Transport-Security/)
  })

  it('carries the reference proxy settings: upgrade map, 64m bodies, 300 s timeouts, forwarded headers, unbuffered /livestream', () => {
    expect(site).toContain("map $http_upgrade $connection_upgrade {\n    default upgrade;\n    '' close;\n}")
    for (const line of [
      '    client_max_body_size 64m;',
      '    proxy_http_version 1.1;',
      '    proxy_set_header X-Forwarded-For $remote_addr;',
      '    proxy_set_header X-Forwarded-Proto $scheme;',
      '    proxy_set_header Connection $connection_upgrade;',
      '    proxy_read_timeout 300s;',
      '    proxy_send_timeout 300s;',
    ])
      expect(lines(site)).toContain(line)
    expect(site).toMatch(
      /location \/livestream \{\n {8}proxy_pass http:\/\/127\.0\.0\.1:12080;\n {8}proxy_buffering off;\n {8}proxy_cache off;\n {8}proxy_read_timeout 3600s;/,
    )
  })
})

describe('buildNginxSite with a certificate', () => {
  const site = buildNginxSite({ ...base, tls })
  const [http, https] = servers(site)

  it('port 80 answers the ACME challenge and redirects everything else to https', () => {
    expect(http).toContain('location ^~ /.well-known/acme-challenge/ {')
    expect(http).toContain('    location / {\n        return 301 https://$host$request_uri;\n    }')
    expect(http).not.toMatch(/proxy_pass|ssl/)
  })

  it('port 443 serves the certificate with modern TLS settings, HSTS and the proxy', () => {
    for (const line of [
      '    listen 443 ssl;',
      '    listen [::]:443 ssl;',
      '    server_name posthog.example.com;',
      `    ssl_certificate ${tls.certificate};`,
      `    ssl_certificate_key ${tls.key};`,
      '    ssl_protocols TLSv1.2 TLSv1.3;',
      '    ssl_prefer_server_ciphers off;',
      '    ssl_session_tickets off;',
      '    add_header Strict-Transport-Security "max-age=63072000" always;',
      '    client_max_body_size 64m;',
      '        proxy_pass http://127.0.0.1:12080;',
      '        proxy_buffering off;',
    ])
      expect(lines(https!)).toContain(line)
    expect(https).toMatch(/ssl_ciphers ECDHE-[\w:-]+;/)
    expect(https).not.toMatch(/TLSv1\.1|TLSv1;|acme-challenge/)
  })

  it('is the same text on every run (re-runs change nothing)', () => {
    expect(buildNginxSite({ ...base, tls })).toBe(site)
  })
})

describe('the settings recorded in the site', () => {
  it('round-trip, so certbot renders the same site frps-setup wrote', () => {
    const opts = {
      ...base,
      upstreamPort: 13080,
      httpListen: ['127.0.0.1:8080'],
      httpsListen: ['127.0.0.1:8443'],
      acmeWebroot: '/srv/acme',
    }
    const settings = recordedSettings(buildNginxSite(opts))
    expect(settings).toEqual({
      upstreamPort: 13080,
      httpListen: ['127.0.0.1:8080'],
      httpsListen: ['127.0.0.1:8443'],
      acmeWebroot: '/srv/acme',
    })
    expect(buildNginxSite({ domain: base.domain, ...settings!, tls })).toBe(buildNginxSite({ ...opts, tls }))
  })

  it('are absent from a file this version did not write, or one whose line was tampered with', () => {
    expect(recordedSettings('server { listen 80; } # managed by Certbot\n')).toBeUndefined()
    const site = buildNginxSite(base)
    expect(recordedSettings(site.replace('"upstreamPort":12080', '"upstreamPort":"x; evil"'))).toBeUndefined()
    expect(
      recordedSettings(site.replace('"httpListen":["80"', '"httpListen":["80; return 200"')),
    ).toBeUndefined()
  })
})

describe('bad input', () => {
  it('uses the listen addresses it is given (tests listen on loopback ports)', () => {
    const site = buildNginxSite({ ...base, httpListen: ['127.0.0.1:18080'], httpsListen: ['18443'], tls })
    expect(site).toContain('    listen 127.0.0.1:18080;\n')
    expect(site).toContain('    listen 18443 ssl;\n')
    expect(site).not.toContain('listen 80;')
  })

  it.each([
    ['posthog.example.com; include /etc/passwd', 'domain'],
    ['posthog.example.com\nserver_name x', 'domain'],
    ['-bad.example.com', 'domain'],
    ['localhost', 'domain'],
    ['203.0.113.7', 'domain'],
  ])('refuses the domain %j', (domain) => {
    expect(() => buildNginxSite({ ...base, domain })).toThrow(UsageError)
  })

  it.each([0, 70000, 1.5, Number.NaN])('refuses the upstream port %s', (upstreamPort) => {
    expect(() => buildNginxSite({ ...base, upstreamPort })).toThrow(UsageError)
  })

  it('refuses listen values that are not [address:]port, and an empty list', () => {
    expect(() => buildNginxSite({ ...base, httpListen: ['80; return 200'] })).toThrow(UsageError)
    expect(() => buildNginxSite({ ...base, httpsListen: ['443 ssl'] })).toThrow(UsageError)
    expect(() => buildNginxSite({ ...base, httpListen: [] })).toThrow(UsageError)
  })

  it.each([
    ['relative/webroot', { acmeWebroot: 'relative/webroot' }],
    ['a webroot with a space', { acmeWebroot: '/var/www/my site' }],
    ['a webroot with $', { acmeWebroot: '/var/www/$host' }],
    ['a certificate path with ;', { tls: { ...tls, certificate: '/etc/x.pem; include /etc/passwd' } }],
    ['a key path with {', { tls: { ...tls, key: '/etc/{x}.pem' } }],
  ])('refuses %s', (_what, over) => {
    expect(() => buildNginxSite({ ...base, ...over })).toThrow(UsageError)
  })

  it('never renders a token that could end a directive or open a block', () => {
    expect(() => renderNginx([directive('add_header', ['X', 'a;b'])])).toThrow(/unsafe token/)
    expect(() => renderNginx([block('location', ['/ {'], [])])).toThrow(/unsafe token/)
    expect(() => renderNginx([directive('return', ['200', "'x' y'"])])).toThrow(/unsafe token/)
  })
})

describe.runIf(hasBinary('nginx') && hasBinary('openssl'))('the real nginx', () => {
  it('accepts both shapes of the site (nginx -t)', () => {
    const dir = scratchDir('nginx-real-')
    try {
      const nginx = makeNginx(path.join(dir, 'nginx'))
      const cert = path.join(dir, 'cert.pem')
      const key = path.join(dir, 'key.pem')
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '2',
          '-subj',
          '/CN=posthog.example.com',
        ]),
        { stdio: 'ignore', timeout: 30_000 },
      )
      const listen = { httpListen: ['127.0.0.1:18080'], httpsListen: ['127.0.0.1:18443'] }
      fs.writeFileSync(
        path.join(nginx.sitesEnabled, 'a.conf'),
        buildNginxSite({ ...base, ...listen, acmeWebroot: dir, tls: { certificate: cert, key } }),
      )
      fs.writeFileSync(
        path.join(nginx.sitesEnabled, 'b.conf'),
        buildNginxSite({ ...base, ...listen, domain: 'other.example.com', acmeWebroot: dir }),
      )
      execFileSync('nginx', [...nginx.args, '-t', '-q'], { stdio: 'pipe', timeout: 15_000 })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('installNginxSite', () => {
  let dir: string
  let available: string
  let enabled: string
  let webroot: string
  let reloads: number
  const log: string[] = []
  const ok = ['-c', 'exit 0']
  const failing = [
    '-c',
    'echo \'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/x.conf:3\' >&2; exit 1',
  ]
  const opts = (testArgs: string[], over: Partial<Parameters<typeof buildNginxSite>[0]> = {}) => ({
    ...base,
    acmeWebroot: webroot,
    ...over,
    sitesAvailableDir: available,
    sitesEnabledDir: enabled,
    nginxBin: '/bin/sh',
    nginxTestArgs: testArgs,
    reload: async () => {
      reloads++
    },
    log: (l: string) => log.push(l),
  })

  beforeEach(() => {
    dir = scratchDir('nginx-unit-')
    available = path.join(dir, 'sites-available')
    enabled = path.join(dir, 'sites-enabled')
    webroot = path.join(dir, 'www/acme')
    reloads = 0
    log.length = 0
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  const siteFile = () => path.join(available, 'posthog.example.com.conf')
  const link = () => path.join(enabled, 'posthog.example.com.conf')
  const backups = () => fs.readdirSync(available).filter((f) => f.includes('.bak-'))

  it('writes, makes the webroot, enables, tests and reloads; a re-run changes nothing and does not reload', async () => {
    expect(await installNginxSite(opts(ok))).toBe('created')
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(buildNginxSite({ ...base, acmeWebroot: webroot }))
    expect(fs.statSync(webroot).isDirectory()).toBe(true)
    expect(fs.readlinkSync(link())).toBe(siteFile())
    expect(reloads).toBe(1)
    const mtime = fs.statSync(siteFile()).mtimeMs
    expect(await installNginxSite(opts(ok))).toBe('unchanged')
    expect(fs.statSync(siteFile()).mtimeMs).toBe(mtime)
    expect(reloads).toBe(1)
    expect(log.at(-1)).toMatch(/is up to date$/)
  })

  it('keeps a backup of the file it replaces and says where', async () => {
    await installNginxSite(opts(ok))
    expect(await installNginxSite(opts(ok, { tls }))).toBe('updated')
    expect(backups()).toHaveLength(1)
    expect(fs.readFileSync(path.join(available, backups()[0]!), 'utf8')).not.toContain('ssl_certificate')
    expect(log.at(-1)).toContain(`previous file kept as ${path.join(available, backups()[0]!)}`)
  })

  it('takes over a site certbot --nginx edited, keeping that file as the backup', async () => {
    const edited = 'server {\n    listen 443 ssl; # managed by Certbot\n}\n'
    fs.mkdirSync(available, { recursive: true })
    fs.writeFileSync(siteFile(), edited)
    expect(await installNginxSite(opts(ok, { tls }))).toBe('updated')
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(buildNginxSite({ ...base, acmeWebroot: webroot, tls }))
    expect(fs.readFileSync(path.join(available, backups()[0]!), 'utf8')).toBe(edited)
    expect(log.at(-1)).toMatch(
      /replaced: the toolkit now writes the whole site, certbot's edits are kept in /,
    )
  })

  it('puts the previous file back when nginx -t fails, drops the backup, does not reload, and says why in one line', async () => {
    await installNginxSite(opts(ok))
    const before = fs.readFileSync(siteFile(), 'utf8')
    const attempt = installNginxSite(opts(failing, { upstreamPort: 13080 }))
    await expect(attempt).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(attempt).rejects.toThrow(/unknown directive "bogus" in \/etc\/nginx\/conf\.d\/x\.conf:3/)
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(before)
    expect(backups()).toEqual([])
    expect(reloads).toBe(1)
  })

  it('removes a new site and its link again when nginx -t fails on the first install', async () => {
    await expect(installNginxSite(opts(failing))).rejects.toBeInstanceOf(RuntimeFailure)
    expect(fs.existsSync(siteFile())).toBe(false)
    expect(fs.existsSync(link())).toBe(false)
    expect(reloads).toBe(0)
  })

  it('says to install nginx when there is none, and leaves nothing behind', async () => {
    const attempt = installNginxSite({ ...opts(ok), nginxBin: path.join(dir, 'no-nginx') })
    await expect(attempt).rejects.toMatchObject({
      message: expect.stringMatching(/no-nginx not found/),
      fix: expect.stringMatching(/apt-get install nginx/),
    })
    expect(fs.existsSync(siteFile())).toBe(false)
  })

  it('refuses to replace a regular file where the enabling symlink goes', async () => {
    fs.mkdirSync(enabled, { recursive: true })
    fs.writeFileSync(link(), 'user file')
    await expect(installNginxSite(opts(ok))).rejects.toThrow(/is not a symlink/)
    expect(fs.readFileSync(link(), 'utf8')).toBe('user file')
  })

  it('works without a sites-enabled dir (conf.d layout)', async () => {
    expect(await installNginxSite({ ...opts(ok), sitesEnabledDir: undefined })).toBe('created')
    expect(fs.existsSync(enabled)).toBe(false)
  })
})
