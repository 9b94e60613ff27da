import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RuntimeFailure, UsageError } from '../../lib/cli.mts'
import {
  block,
  buildNginxSite,
  CERTBOT_MARK,
  directive,
  extractCertbot,
  installNginxSite,
  parseNginx,
  planSite,
  recordedHash,
  renderNginx,
} from '../../lib/nginx.mts'
import { scratchDir } from '../helpers/common.ts'

const base = { domain: 'posthog.example.com', upstreamPort: 12080 }

// What certbot 2.1.0 `--nginx --redirect` did to the generated site in a real run (the e2e test
// test/e2e/public-path.test.ts runs the real thing): drops the port-80 listen lines from the
// proxy block, appends its TLS lines there, and adds a redirect server block; no final newline.
const CERTBOT_LINES = [
  '    listen 443 ssl; # managed by Certbot',
  '    ssl_certificate /etc/letsencrypt/live/posthog.example.com/fullchain.pem; # managed by Certbot',
  '    ssl_certificate_key /etc/letsencrypt/live/posthog.example.com/privkey.pem; # managed by Certbot',
  '    include /etc/letsencrypt/options-ssl-nginx.conf; # managed by Certbot',
  '    ssl_dhparam /etc/letsencrypt/ssl-dhparams.pem; # managed by Certbot',
]
const REDIRECT = `

server {
    if ($host = posthog.example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot


    listen 80;
    listen [::]:80;
    server_name posthog.example.com;
    return 404; # managed by Certbot


}`

function certbotEdit(site: string): string {
  const withoutListen = site.replace('    listen 80;\n    listen [::]:80;\n', '')
  return withoutListen.replace(/\n}\n$/, `\n\n${CERTBOT_LINES.join('\n')}\n\n}\n`) + REDIRECT
}

describe('buildNginxSite', () => {
  it('builds the reference site: upgrade map, 64m bodies, 300 s timeouts, forwarded headers, unbuffered /livestream', () => {
    const site = buildNginxSite(base)
    expect(site).toContain("map $http_upgrade $connection_upgrade {\n    default upgrade;\n    '' close;\n}")
    for (const line of [
      '    listen 80;',
      '    listen [::]:80;',
      '    server_name posthog.example.com;',
      '    client_max_body_size 64m;',
      '    proxy_http_version 1.1;',
      '    proxy_set_header X-Forwarded-For $remote_addr;',
      '    proxy_set_header X-Forwarded-Proto $scheme;',
      '    proxy_set_header Connection $connection_upgrade;',
      '    proxy_read_timeout 300s;',
      '    proxy_send_timeout 300s;',
      '        proxy_pass http://127.0.0.1:12080;',
      '        proxy_buffering off;',
    ])
      expect(site.split('\n')).toContain(line)
    expect(site).toMatch(
      /location \/livestream \{\n {8}proxy_pass http:\/\/127\.0\.0\.1:12080;\n {8}proxy_buffering off;/,
    )
  })

  it('renders the same text it parses back (the model is the file)', () => {
    const site = buildNginxSite(base)
    expect(`${renderNginx(parseNginx(site))}\n`).toBe(site)
  })

  it('uses the listen addresses it is given (tests listen on loopback ports)', () => {
    const site = buildNginxSite({ ...base, httpListen: ['127.0.0.1:18080'] })
    expect(site).toContain('    listen 127.0.0.1:18080;\n')
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

  it('refuses listen values that are not [address:]port', () => {
    expect(() => buildNginxSite({ ...base, httpListen: ['80; return 200'] })).toThrow(UsageError)
  })

  it('never renders a token that could end a directive or open a block', () => {
    expect(() => renderNginx([directive('add_header', ['X', 'a;b'])])).toThrow(/unsafe token/)
    expect(() => renderNginx([block('location', ['/ {'], [])])).toThrow(/unsafe token/)
    expect(() => renderNginx([directive('return', ['200', "'x' y'"])])).toThrow(/unsafe token/)
  })
})

describe('certbot additions', () => {
  it('reads the marked lines, the redirect block and the listen lines certbot moved', () => {
    const found = extractCertbot(certbotEdit(buildNginxSite(base)))!
    expect(found.serverDirectives.map((d) => d.name)).toEqual([
      'listen',
      'ssl_certificate',
      'ssl_certificate_key',
      'include',
      'ssl_dhparam',
    ])
    expect(found.extraServers).toHaveLength(1)
    expect(found.removedListens).toEqual(['80', '[::]:80'])
  })

  it('finds nothing in a file certbot never touched', () => {
    expect(extractCertbot(buildNginxSite(base))).toBeUndefined()
  })

  it('keeps a certbot-edited file as it is while the generated core is unchanged', () => {
    const edited = certbotEdit(buildNginxSite(base))
    expect(planSite(base, edited)).toBe(edited)
  })

  it('re-applies certbot lines when the core changes, in the shape certbot writes', () => {
    const edited = certbotEdit(buildNginxSite(base))
    const next = planSite({ ...base, upstreamPort: 13080 }, edited)
    expect(next).toContain('proxy_pass http://127.0.0.1:13080;')
    expect(next).not.toContain('12080')
    const marked = (t: string) => t.split('\n').filter((l) => l.includes(CERTBOT_MARK))
    expect(marked(next)).toEqual(marked(edited))
    // the proxy block listens only where certbot left it (443), port 80 stays in the redirect block
    const [proxy, redirect] = parseNginx(next).filter((n) => n.type === 'block' && n.name === 'server')
    const listens = (b: typeof proxy) =>
      b?.type === 'block'
        ? b.children.flatMap((c) => (c.type === 'directive' && c.name === 'listen' ? [c.args.join(' ')] : []))
        : []
    expect(listens(proxy)).toEqual(['443 ssl'])
    expect(listens(redirect)).toEqual(['80', '[::]:80'])
    // and it is stable: a second run with the same settings leaves it alone
    expect(planSite({ ...base, upstreamPort: 13080 }, next)).toBe(next)
    expect(recordedHash(next)).toBe(recordedHash(buildNginxSite({ ...base, upstreamPort: 13080 })))
  })

  it("keeps an older certbot's in-block redirect", () => {
    const inBlock = `    if ($scheme != "https") {\n        return 301 https://$host$request_uri;\n    } # managed by Certbot`
    const edited = buildNginxSite(base).replace(/\n}\n$/, `\n${CERTBOT_LINES[0]}\n${inBlock}\n}\n`)
    const next = planSite({ ...base, upstreamPort: 13080 }, edited)
    expect(next).toContain(
      '    if ($scheme != "https" ) {\n        return 301 https://$host$request_uri;\n    } # managed by Certbot\n}',
    )
    expect(next).toContain('    listen 80;\n')
  })

  it('replaces a file it cannot parse (the installer keeps a backup)', () => {
    expect(planSite(base, 'server { broken')).toBe(buildNginxSite(base))
  })
})

describe('installNginxSite', () => {
  let dir: string
  let available: string
  let enabled: string
  let reloads: number
  const log: string[] = []
  const ok = ['-c', 'exit 0']
  const failing = [
    '-c',
    'echo \'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/x.conf:3\' >&2; exit 1',
  ]
  const opts = (testArgs: string[], over: Partial<typeof base> = {}) => ({
    ...base,
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
    reloads = 0
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  const siteFile = () => path.join(available, 'posthog.example.com.conf')
  const link = () => path.join(enabled, 'posthog.example.com.conf')

  it('writes, enables, tests and reloads; a re-run changes nothing and does not reload', async () => {
    expect(await installNginxSite(opts(ok))).toBe('created')
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(buildNginxSite(base))
    expect(fs.readlinkSync(link())).toBe(siteFile())
    expect(reloads).toBe(1)
    const mtime = fs.statSync(siteFile()).mtimeMs
    expect(await installNginxSite(opts(ok))).toBe('unchanged')
    expect(fs.statSync(siteFile()).mtimeMs).toBe(mtime)
    expect(reloads).toBe(1)
  })

  it('keeps a backup of the file it replaces', async () => {
    await installNginxSite(opts(ok))
    expect(await installNginxSite(opts(ok, { upstreamPort: 13080 }))).toBe('updated')
    const backups = fs.readdirSync(available).filter((f) => f.includes('.bak-'))
    expect(backups).toHaveLength(1)
    expect(fs.readFileSync(path.join(available, backups[0]!), 'utf8')).toContain('12080')
  })

  it('puts the previous file back when nginx -t fails, does not reload, and says why in one line', async () => {
    await installNginxSite(opts(ok))
    const before = fs.readFileSync(siteFile(), 'utf8')
    const attempt = installNginxSite(opts(failing, { upstreamPort: 13080 }))
    await expect(attempt).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(attempt).rejects.toThrow(/unknown directive "bogus" in \/etc\/nginx\/conf\.d\/x\.conf:3/)
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(before)
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
