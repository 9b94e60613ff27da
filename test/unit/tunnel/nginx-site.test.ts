import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { buildNginxSite, recordedSettings } from '../../../lib/tunnel/nginx-site.mts'
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
