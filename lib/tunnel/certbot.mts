// certbot as the VPS step uses it, pure: the request (domain, e-mail, ACME server) checked,
// certbot's command lines, where the certificate lives, the nginx deploy hook, and certbot's
// multi-line failure turned into one line.
import path from 'node:path'
import { UsageError } from '../core/cli.mts'
import { requireDomain, type TlsFiles } from './nginx-settings.mts'

export const STAGING_SERVER = 'https://acme-staging-v02.api.letsencrypt.org/directory'

export interface CertificateRequest {
  domain: string
  email: string
  /** ACME directory URL; undefined = Let's Encrypt (or staging with `staging`). */
  acmeServer?: string
  staging?: boolean
}

function checkAcmeServer(raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new UsageError(`--acme-server '${raw}' is not a URL: use the ACME directory, e.g. https://host/dir`)
  }
  if (url.protocol !== 'https:') throw new UsageError(`--acme-server '${raw}' must be an https:// URL`)
  return raw
}

/** The request as given on the command line, checked: a UsageError names the first bad value. */
export function certificateRequest(given: {
  domain: string | undefined
  email: string | undefined
  acmeServer: string | undefined
  staging: boolean
}): CertificateRequest {
  const domain = requireDomain(given.domain)
  const email = given.email ?? ''
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
    throw new UsageError(
      email
        ? `e-mail '${email}' is not an address`
        : 'no e-mail: pass --email you@example.com (or set CERTBOT_EMAIL)',
    )
  const acmeServer = given.acmeServer ? checkAcmeServer(given.acmeServer) : undefined
  if (acmeServer && given.staging)
    throw new UsageError('--staging and --acme-server exclude each other: pick one')
  return { domain, email, ...(acmeServer ? { acmeServer } : {}), staging: given.staging }
}

/** Whose terms of service the request agrees to. */
export function acmeServerName(request: CertificateRequest): string {
  return request.acmeServer ?? (request.staging ? "Let's Encrypt staging" : "Let's Encrypt")
}

export interface CertbotPaths {
  configDir: string
  workDir: string
  logsDir: string
}

export interface IssueOptions extends CertbotPaths, CertificateRequest {
  /** Folder nginx serves /.well-known/acme-challenge/ from (the site's ACME webroot). */
  webroot: string
  /** Replace a certificate that is still valid (a staging one when a real one is wanted). */
  forceRenewal?: boolean
}

function commonArgs(p: CertbotPaths): string[] {
  return ['--config-dir', p.configDir, '--work-dir', p.workDir, '--logs-dir', p.logsDir]
}

function serverArgs(o: { acmeServer?: string; staging?: boolean }): string[] {
  if (o.acmeServer) return ['--server', o.acmeServer]
  return o.staging ? ['--staging'] : []
}

/**
 * `certbot certonly --webroot ...`: issues (or keeps) the certificate and touches no nginx file;
 * the challenge files go into the webroot the site serves on port 80.
 */
export function certonlyArgs(o: IssueOptions): string[] {
  return [
    'certonly',
    '--webroot',
    '-w',
    o.webroot,
    '--cert-name',
    o.domain,
    '-d',
    o.domain,
    '--non-interactive',
    '--agree-tos',
    '-m',
    o.email,
    '--no-eff-email',
    o.forceRenewal ? '--force-renewal' : '--keep-until-expiring',
    ...serverArgs(o),
    ...commonArgs(o),
  ]
}

/**
 * `certbot renew --dry-run` for this certificate against the SAME server: without `--server` a
 * dry run goes to Let's Encrypt staging whatever the renewal file says (reference §7).
 */
export function renewDryRunArgs(
  o: CertbotPaths & Pick<CertificateRequest, 'domain' | 'acmeServer' | 'staging'>,
): string[] {
  const server = o.acmeServer ?? (o.staging ? STAGING_SERVER : undefined)
  return [
    'renew',
    '--dry-run',
    '--cert-name',
    o.domain,
    '--non-interactive',
    // without a terminal certbot renew first sleeps up to 8 minutes (meant for cron)
    '--no-random-sleep-on-renew',
    ...(server ? ['--server', server] : []),
    ...commonArgs(o),
  ]
}

/** The files nginx serves: certbot keeps them current under live/DOMAIN/ (symlinks into archive/). */
export function liveFiles(configDir: string, domain: string): TlsFiles {
  const live = path.join(configDir, 'live', domain)
  return { certificate: path.join(live, 'fullchain.pem'), key: path.join(live, 'privkey.pem') }
}

export function certFile(configDir: string, domain: string): string {
  return path.join(configDir, 'live', domain, 'cert.pem')
}

export const DEPLOY_HOOK_NAME = '50-posthog-homelab-reload-nginx'

export function deployHookPath(configDir: string): string {
  return path.join(configDir, 'renewal-hooks', 'deploy', DEPLOY_HOOK_NAME)
}

/** POSIX shell single-quoting; the path must not hold a newline. */
function shellQuote(value: string): string {
  if (/[\n\r\0]/.test(value)) throw new Error('a hook path cannot contain a newline')
  return `'${value.replace(/'/g, `'\\''`)}'`
}

/**
 * The deploy hook certbot runs after every renewed certificate: test nginx's configuration, then
 * reload it (nginx reads certificates only when it loads its configuration), so a broken config
 * never takes the site down. `nginxConf` names a private nginx (tests).
 */
export function buildDeployHook(o: { nginxBin?: string; nginxConf?: string } = {}): string {
  const nginx = [shellQuote(o.nginxBin ?? 'nginx'), ...(o.nginxConf ? ['-c', shellQuote(o.nginxConf)] : [])]
  const cmd = nginx.join(' ')
  const reload = o.nginxConf
    ? `${cmd} -s reload`
    : `if [ -d /run/systemd/system ]; then systemctl reload nginx; else ${cmd} -s reload; fi`
  return [
    '#!/bin/sh',
    '# Installed by posthog-homelab (remote/certbot.mts). certbot runs it after each renewed',
    '# certificate (RENEWED_LINEAGE, RENEWED_DOMAINS): test the nginx config, then reload nginx.',
    'set -e',
    `${cmd} -t -q`,
    reload,
    '',
  ].join('\n')
}

/**
 * One line from certbot's failure output: the CA's `Detail:` when validation failed, otherwise
 * the first line that says what went wrong.
 */
export function certbotReason(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const detail = lines.find((l) => l.startsWith('Detail:'))
  if (detail) {
    const type = lines.find((l) => l.startsWith('Type:'))
    return `${type ? `${type.slice(5).trim()}: ` : ''}${detail.slice(7).trim()}`
  }
  const unexpected = lines.findIndex((l) => l.startsWith('An unexpected error occurred:'))
  if (unexpected >= 0) {
    const rest = lines[unexpected]!.slice('An unexpected error occurred:'.length).trim()
    return rest || lines[unexpected + 1] || 'an unexpected error occurred'
  }
  const noise =
    /^(Saving debug log|Ask for help|See the logfile|Requesting a certificate|Account registered|Plugins selected|- - -|Some challenges have failed|Certbot failed to authenticate|The Certificate Authority reported|Hint:)/
  const useful = lines.filter((l) => !noise.test(l))
  const error = useful.find((l) => /error|could not|failed|unable|not found|invalid|refused/i.test(l))
  return error ?? useful.at(-1) ?? 'certbot failed'
}
