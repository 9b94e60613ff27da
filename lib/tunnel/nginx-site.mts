// The nginx site in front of the frp tunnel (reference tunnel-proxy-tls.md §4), built whole from
// the typed model in nginx-config.mts. The toolkit owns the whole file. Port 80 always serves the
// ACME challenge path from a webroot (certbot certonly --webroot writes there). Before a
// certificate exists it proxies everything else too (plain http: there is nothing to redirect to
// yet); once one exists port 80 redirects to https and port 443 carries the certificate, TLS
// settings, HSTS and the proxy. The settings it was built from are recorded in its header, so a
// later step renders the same site again.
import {
  blank,
  block,
  comment,
  directive,
  type NginxBlock,
  type NginxNode,
  renderNginx,
} from './nginx-config.mts'
import {
  type SiteSettings,
  siteSettingsOf,
  type TlsFiles,
  validateDomain,
  validateNginxPath,
} from './nginx-settings.mts'

export interface SiteOptions extends Partial<SiteSettings> {
  domain: string
  upstreamPort: number
  /** The certificate, once there is one: then port 80 redirects and port 443 serves. */
  tls?: TlsFiles
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
