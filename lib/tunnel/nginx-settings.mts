// What the nginx site in front of the tunnel is built from, and the checks every value passes
// before it can reach the file: the domain, the upstream port, the listen values and the paths.
import { type FlagSpec, UsageError } from '../core/cli.mts'

export const DEFAULT_HTTP_LISTEN = ['80', '[::]:80']
export const DEFAULT_HTTPS_LISTEN = ['443', '[::]:443']
/** Where certbot's webroot authenticator puts the challenge files (under .well-known/acme-challenge/). */
export const DEFAULT_ACME_WEBROOT = '/var/www/posthog-homelab'

/** The `--domain` flag both VPS steps share. */
export const DOMAIN_FLAG = {
  type: 'string',
  env: 'DOMAIN',
  help: 'public hostname of PostHog, e.g. posthog.example.com',
} as const satisfies FlagSpec

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

/** The `--domain` value, required and checked. */
export function requireDomain(domain: string | undefined): string {
  if (!domain) throw new UsageError('no domain: pass --domain posthog.example.com (or set DOMAIN)')
  return validateDomain(domain)
}

export function validatePort(port: number, name: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`${name} ${port} is not a port: use a number from 1 to 65535`)
  return port
}

/** A port given as text (a flag or an environment variable). */
export function parsePort(raw: string, name: string): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${name} ${raw} is not a port: use a number from 1 to 65535`)
  return validatePort(Number(raw), name)
}

function validateListen(value: string): string {
  const port = Number(value.split(':').at(-1))
  if (!LISTEN.test(value) || port < 1 || port > 65535)
    throw new UsageError(`listen address '${value}' is not [address:]port`)
  return value
}

/** A comma-separated list of listen values; undefined for an empty value (the default then applies). */
export function listenList(raw: string): string[] | undefined {
  if (!raw) return undefined
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

export function validateNginxPath(value: string, what: string): string {
  if (!NGINX_PATH.test(value))
    throw new UsageError(
      `${what} '${value}' cannot go into the nginx site: use an absolute path without spaces, quotes, $, ;, {, } or #`,
    )
  return value
}

/** The settings with defaults filled in and every value checked. */
export function siteSettingsOf(opts: Partial<SiteSettings> & { upstreamPort: number }): SiteSettings {
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
