// The nginx site in front of the frp tunnel (reference tunnel-proxy-tls.md §4), built whole from a
// small typed model and rendered by one function, plus its installer: atomic write with a backup,
// `nginx -t` before every reload, the previous files put back when the test fails.
//
// The toolkit owns the whole file. Port 80 always serves the ACME challenge path from a webroot
// (certbot certonly --webroot writes there). Before a certificate exists it proxies everything
// else too (plain http: there is nothing to redirect to yet); once one exists port 80 redirects to
// https and port 443 carries the certificate, TLS settings, HSTS and the proxy.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { run } from '../core/exec.mts'
import { backupFile, readIfExists, type WriteResult, writeFileAtomic } from '../core/fs.mts'

// ---------------------------------------------------------------------------------------------
// Block model and renderer

export interface NginxDirective {
  type: 'directive'
  name: string
  args: string[]
}

export interface NginxBlock {
  type: 'block'
  name: string
  args: string[]
  children: NginxNode[]
}

export interface NginxComment {
  type: 'comment'
  text: string
}

export interface NginxBlank {
  type: 'blank'
}

export type NginxNode = NginxDirective | NginxBlock | NginxComment | NginxBlank

export const directive = (name: string, args: string[] = []): NginxDirective => ({
  type: 'directive',
  name,
  args,
})
export const block = (name: string, args: string[], children: NginxNode[]): NginxBlock => ({
  type: 'block',
  name,
  args,
  children,
})
export const comment = (text: string): NginxComment => ({ type: 'comment', text })
export const blank: NginxBlank = { type: 'blank' }

// A token is a bare word without whitespace, quotes, braces, `;`, `#` or backslashes, or a quoted
// string without its own quote character or a backslash; nothing else can reach the file, so no
// value can close a block or add a directive.
const BARE_TOKEN = /^[^\s;{}#'"\\]+$/
const QUOTED_TOKEN = /^(?:'[^'\\\n]*'|"[^"\\\n]*")$/

function checkToken(token: string, where: string): string {
  if (BARE_TOKEN.test(token) || QUOTED_TOKEN.test(token)) return token
  throw new Error(`nginx: refusing to render unsafe token ${JSON.stringify(token)} in ${where}`)
}

function checkComment(text: string): string {
  if (/[\r\n]/.test(text)) throw new Error('nginx: a comment cannot span lines')
  return text
}

/** Renders nodes as nginx configuration text, four spaces per level. */
export function renderNginx(nodes: NginxNode[], depth = 0): string {
  const pad = '    '.repeat(depth)
  const lines: string[] = []
  for (const node of nodes) {
    if (node.type === 'blank') lines.push('')
    else if (node.type === 'comment') lines.push(`${pad}# ${checkComment(node.text)}`.trimEnd())
    else {
      const words = [node.name, ...node.args].map((w) => checkToken(w, node.name))
      if (node.type === 'directive') lines.push(`${pad}${words.join(' ')};`)
      else {
        const inner = node.children.length > 0 ? [renderNginx(node.children, depth + 1)] : []
        lines.push(`${pad}${words.join(' ')} {`, ...inner, `${pad}}`)
      }
    }
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// The site

export const DEFAULT_HTTP_LISTEN = ['80', '[::]:80']
export const DEFAULT_HTTPS_LISTEN = ['443', '[::]:443']
/** Where certbot's webroot authenticator puts the challenge files (under .well-known/acme-challenge/). */
export const DEFAULT_ACME_WEBROOT = '/var/www/posthog-homelab'

export interface TlsFiles {
  /** The full chain, e.g. /etc/letsencrypt/live/DOMAIN/fullchain.pem. */
  certificate: string
  key: string
}

/** What the site is built from besides the domain and the certificate; recorded in the file. */
export interface SiteSettings {
  /** frps `remotePort` on 127.0.0.1 (FRP_REMOTE_PORT). */
  upstreamPort: number
  /** `listen` values of the plain-http server (tests use loopback ports). */
  httpListen: string[]
  /** `listen` values of the https server, rendered with `ssl`. */
  httpsListen: string[]
  acmeWebroot: string
}

export interface SiteOptions extends Partial<SiteSettings> {
  domain: string
  upstreamPort: number
  /** The certificate, once there is one: then port 80 redirects and port 443 serves. */
  tls?: TlsFiles
}

const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i
const LISTEN = /^(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]|localhost):)?\d{1,5}$/i
// nginx reads `$` in these paths as a variable, so it is refused with the characters that end a token
const NGINX_PATH = /^\/[^\s;{}#'"\\$]*$/

export function validateDomain(domain: string): string {
  if (!HOSTNAME.test(domain) || !domain.includes('.') || /^[\d.]+$/.test(domain))
    throw new UsageError(
      `domain '${domain}' is not a hostname: use the public name, e.g. posthog.example.com`,
    )
  return domain.toLowerCase()
}

export function validatePort(port: number, name: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`${name} ${port} is not a port: use a number from 1 to 65535`)
  return port
}

function validateListen(value: string): string {
  const port = Number(value.split(':').at(-1))
  if (!LISTEN.test(value) || port < 1 || port > 65535)
    throw new UsageError(`listen address '${value}' is not [address:]port`)
  return value
}

export function validateNginxPath(value: string, what: string): string {
  if (!NGINX_PATH.test(value))
    throw new UsageError(
      `${what} '${value}' cannot go into the nginx site: use an absolute path without spaces, quotes, $, ;, {, } or #`,
    )
  return value
}

/** The settings with defaults filled in and every value checked. */
function siteSettingsOf(opts: Partial<SiteSettings> & { upstreamPort: number }): SiteSettings {
  const listen = (values: string[] | undefined, fallback: string[]) => {
    const list = values ?? fallback
    if (list.length === 0) throw new UsageError('a listen list cannot be empty')
    return list.map(validateListen)
  }
  return {
    upstreamPort: validatePort(opts.upstreamPort, 'upstream port'),
    httpListen: listen(opts.httpListen, DEFAULT_HTTP_LISTEN),
    httpsListen: listen(opts.httpsListen, DEFAULT_HTTPS_LISTEN),
    acmeWebroot: validateNginxPath(opts.acmeWebroot ?? DEFAULT_ACME_WEBROOT, 'ACME webroot'),
  }
}

function upgradeMap(): NginxBlock {
  return block(
    'map',
    ['$http_upgrade', '$connection_upgrade'],
    [directive('default', ['upgrade']), directive("''", ['close'])],
  )
}

function challengeLocation(webroot: string): NginxBlock {
  return block(
    'location',
    ['^~', '/.well-known/acme-challenge/'],
    [directive('root', [webroot]), directive('default_type', ['text/plain'])],
  )
}

/** Server-level proxy settings and the two locations that pass requests into the tunnel. */
function proxyNodes(upstreamPort: number): NginxNode[] {
  const upstream = `http://127.0.0.1:${upstreamPort}`
  return [
    comment("PostHog's proxy reference: support 64 MB request bodies (nginx's default 1m gives 413)"),
    directive('client_max_body_size', ['64m']),
    directive('proxy_http_version', ['1.1']),
    directive('proxy_set_header', ['Host', '$host']),
    directive('proxy_set_header', ['X-Real-IP', '$remote_addr']),
    comment("nginx is the first hop: overwrite X-Forwarded-For so clients can't spoof their IP"),
    directive('proxy_set_header', ['X-Forwarded-For', '$remote_addr']),
    directive('proxy_set_header', ['X-Forwarded-Proto', '$scheme']),
    directive('proxy_set_header', ['X-Forwarded-Host', '$host']),
    directive('proxy_set_header', ['X-Forwarded-Port', '$server_port']),
    directive('proxy_set_header', ['Upgrade', '$http_upgrade']),
    directive('proxy_set_header', ['Connection', '$connection_upgrade']),
    directive('proxy_read_timeout', ['300s']),
    directive('proxy_send_timeout', ['300s']),
    blank,
    block('location', ['/'], [directive('proxy_pass', [upstream])]),
    blank,
    comment('server-sent events (livestream): unbuffered, long-lived'),
    block(
      'location',
      ['/livestream'],
      [
        directive('proxy_pass', [upstream]),
        directive('proxy_buffering', ['off']),
        directive('proxy_cache', ['off']),
        directive('proxy_read_timeout', ['3600s']),
      ],
    ),
  ]
}

// Mozilla's "intermediate" profile for nginx 1.22 / OpenSSL 3 (no DHE: it would need dhparams).
const TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

function tlsNodes(tls: TlsFiles): NginxNode[] {
  return [
    directive('ssl_certificate', [validateNginxPath(tls.certificate, 'certificate')]),
    directive('ssl_certificate_key', [validateNginxPath(tls.key, 'certificate key')]),
    comment('modern TLS (Mozilla intermediate): TLS 1.2 and 1.3, forward-secret AEAD ciphers only'),
    directive('ssl_protocols', ['TLSv1.2', 'TLSv1.3']),
    directive('ssl_ciphers', [TLS_CIPHERS]),
    directive('ssl_prefer_server_ciphers', ['off']),
    directive('ssl_session_timeout', ['1d']),
    directive('ssl_session_cache', ['shared:posthog_homelab_tls:10m']),
    directive('ssl_session_tickets', ['off']),
    comment('HSTS: browsers keep to https for two years'),
    directive('add_header', ['Strict-Transport-Security', '"max-age=63072000"', 'always']),
  ]
}

function httpServer(domain: string, s: SiteSettings, tls: TlsFiles | undefined): NginxBlock {
  const rest = tls
    ? [block('location', ['/'], [directive('return', ['301', 'https://$host$request_uri'])])]
    : proxyNodes(s.upstreamPort)
  return block(
    'server',
    [],
    [
      ...s.httpListen.map((l) => directive('listen', [l])),
      directive('server_name', [domain]),
      blank,
      comment("Let's Encrypt's HTTP-01 challenge, answered from certbot's webroot"),
      challengeLocation(s.acmeWebroot),
      blank,
      ...(tls ? [comment('everything else goes to https')] : []),
      ...rest,
    ],
  )
}

function httpsServer(domain: string, s: SiteSettings, tls: TlsFiles): NginxBlock {
  return block(
    'server',
    [],
    [
      ...s.httpsListen.map((l) => directive('listen', [l, 'ssl'])),
      directive('server_name', [domain]),
      blank,
      ...tlsNodes(tls),
      blank,
      ...proxyNodes(s.upstreamPort),
    ],
  )
}

const SETTINGS_TAG = 'posthog-homelab site:'

function header(domain: string, s: SiteSettings, tls: TlsFiles | undefined): NginxNode[] {
  return [
    comment(`PostHog at ${domain} through the frp tunnel. The whole file is written by posthog-homelab`),
    comment('(remote/frps-setup.mts, remote/certbot.mts): a re-run replaces edits, keeping the previous'),
    comment('file as a .bak-<time> copy next to it.'),
    comment(
      tls
        ? 'https with the certificate below; plain http only answers the ACME challenge and redirects.'
        : 'No certificate yet: plain http only (remote/certbot.mts adds https).',
    ),
    comment(`${SETTINGS_TAG} ${JSON.stringify(s)}`),
    blank,
  ]
}

/** The whole nginx site for DOMAIN. Pure; throws UsageError on bad input. */
export function buildNginxSite(opts: SiteOptions): string {
  const domain = validateDomain(opts.domain)
  const s = siteSettingsOf(opts)
  const servers = opts.tls
    ? [httpServer(domain, s, opts.tls), blank, httpsServer(domain, s, opts.tls)]
    : [httpServer(domain, s, undefined)]
  return `${renderNginx([...header(domain, s, opts.tls), upgradeMap(), blank, ...servers])}\n`
}

/** The settings a site file written by buildNginxSite records in its header; undefined for any other file. */
export function recordedSettings(text: string): SiteSettings | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`# ${SETTINGS_TAG} `))
  if (!line) return undefined
  try {
    return siteSettingsOf(JSON.parse(line.slice(SETTINGS_TAG.length + 3)) as SiteSettings)
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------------------------
// Installer

export interface InstallSiteOptions extends SiteOptions {
  /** Where the site file lives (Debian: /etc/nginx/sites-available; RHEL-style: /etc/nginx/conf.d). */
  sitesAvailableDir: string
  /** When set, the site is enabled with a symlink here (Debian: /etc/nginx/sites-enabled). */
  sitesEnabledDir?: string
  nginxBin?: string
  /** Arguments for the config test; default `-t`. Tests add `-c <conf>`. */
  nginxTestArgs?: string[]
  /** Reloads nginx after a passed test; default `systemctl reload-or-restart nginx` or `nginx -s reload`. */
  reload?: () => Promise<void>
  log: (line: string) => void
}

export function siteFileName(domain: string): string {
  return `${validateDomain(domain)}.conf`
}

export function siteFile(sitesAvailableDir: string, domain: string): string {
  return path.join(sitesAvailableDir, siteFileName(domain))
}

interface Snapshot {
  site: string | undefined
  /** Where the sites-enabled link pointed before (undefined: there was none). */
  linkTarget: string | undefined
}

/** The current target of the enabling symlink; refuses a regular file in its place. */
function readLink(link: string): string | undefined {
  try {
    return fs.readlinkSync(link)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EINVAL')
      throw new RuntimeFailure(`${link} exists and is not a symlink`, 'move it away (it is yours) and re-run')
    if (code !== 'ENOENT') throw e
    return undefined
  }
}

function pointLink(link: string, target: string | undefined): void {
  fs.rmSync(link, { force: true })
  if (target === undefined) return
  fs.mkdirSync(path.dirname(link), { recursive: true })
  fs.symlinkSync(target, link)
}

function restore(file: string, link: string | undefined, snapshot: Snapshot): void {
  if (snapshot.site === undefined) fs.rmSync(file, { force: true })
  else writeFileAtomic(file, snapshot.site)
  if (link) pointLink(link, snapshot.linkTarget)
}

/** How to test and reload nginx: the system's, or one started with `-c CONF` (a private nginx in tests). */
export function nginxControl(
  nginxBin: string,
  conf?: string,
): Pick<InstallSiteOptions, 'nginxBin' | 'nginxTestArgs' | 'reload'> {
  if (!conf) return { nginxBin }
  return {
    nginxBin,
    nginxTestArgs: ['-t', '-c', conf],
    reload: async () => {
      await run(nginxBin, ['-c', conf, '-s', 'reload'], { timeout: '30s' })
    },
  }
}

async function defaultReload(nginxBin: string): Promise<void> {
  if (fs.existsSync('/run/systemd/system'))
    await run('systemctl', ['reload-or-restart', 'nginx'], { timeout: '60s' })
  else await run(nginxBin, ['-s', 'reload'], { timeout: '30s' })
}

/** Last meaningful line of `nginx -t` output, e.g. `unknown directive "x" in /etc/...:12`. */
function nginxError(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.replace(/^nginx: (\[emerg\] )?/, '').trim())
    .filter((l) => l && !/test failed|syntax is ok/.test(l))
  return lines[0] ?? 'nginx -t failed'
}

/** `nginx -t`: undefined when it passes, else the failure to report. */
async function testConfig(
  opts: InstallSiteOptions,
  nginxBin: string,
  file: string,
): Promise<RuntimeFailure | undefined> {
  const test = await run(nginxBin, opts.nginxTestArgs ?? ['-t'], { nothrow: true, timeout: '30s' })
  if (test.ok) return undefined
  if (test.exitCode === 127)
    return new RuntimeFailure(
      `${nginxBin} not found, so the site was not installed`,
      'install nginx (apt-get install nginx) and re-run',
    )
  return new RuntimeFailure(
    `nginx rejected the new site ${file} (${nginxError(test.stderr || test.stdout)}); the previous files are back and nginx keeps serving`,
    'fix the reported line (or the file it names) and re-run',
  )
}

function describeChange(
  file: string,
  result: WriteResult,
  backup: string | undefined,
  before: string | undefined,
): string {
  if (!backup) return `nginx site ${file} ${result === 'unchanged' ? 'enabled' : result}`
  // a site certbot --nginx edited (earlier versions of this toolkit) is taken over whole
  const certbotEdited = before?.includes('# managed by Certbot')
  return certbotEdited
    ? `nginx site ${file} replaced: the toolkit now writes the whole site, certbot's edits are kept in ${backup}`
    : `nginx site ${file} updated (previous file kept as ${backup})`
}

/**
 * Writes the site (atomically; a replaced file is kept as a backup), makes the ACME webroot,
 * enables the site, runs `nginx -t` and reloads. When the test fails the previous files are put
 * back, nginx keeps serving the old configuration, and a RuntimeFailure says why.
 */
export async function installNginxSite(opts: InstallSiteOptions): Promise<WriteResult> {
  const wanted = buildNginxSite(opts)
  const file = siteFile(opts.sitesAvailableDir, opts.domain)
  const existing = readIfExists(file)
  const link = opts.sitesEnabledDir ? path.join(opts.sitesEnabledDir, path.basename(file)) : undefined
  const snapshot: Snapshot = { site: existing, linkTarget: link ? readLink(link) : undefined }
  fs.mkdirSync(siteSettingsOf(opts).acmeWebroot, { recursive: true, mode: 0o755 })
  const backup = existing !== undefined && existing !== wanted ? backupFile(file) : undefined
  const result = writeFileAtomic(file, wanted, { mode: 0o644 })
  const target = path.resolve(file)
  const linked =
    link !== undefined &&
    (snapshot.linkTarget === undefined || path.resolve(path.dirname(link), snapshot.linkTarget) !== target)
  if (linked) pointLink(link, target)
  if (result === 'unchanged' && !linked) {
    opts.log(`nginx site ${file} is up to date`)
    return 'unchanged'
  }
  const nginxBin = opts.nginxBin ?? 'nginx'
  const failure = await testConfig(opts, nginxBin, file)
  if (failure) {
    restore(file, link, snapshot)
    if (backup) fs.rmSync(backup, { force: true })
    throw failure
  }
  await (opts.reload ?? (() => defaultReload(nginxBin)))()
  opts.log(`${describeChange(file, result, backup, existing)}; nginx -t passed, reloaded`)
  return result === 'unchanged' ? 'updated' : result
}
