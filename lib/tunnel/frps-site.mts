// The nginx site frps-setup puts in front of the tunnel: its flags, and the options it is installed
// with. It serves https as soon as certbot keeps a certificate for the domain, plain http before.
import path from 'node:path'
import type { FlagSpecs, Flags } from '../core/cli.mts'
import { liveCertificate } from './certificate.mts'
import { type InstallSiteOptions, NGINX_SITE_FLAGS, type NginxTarget, nginxTarget } from './nginx-install.mts'
import {
  DEFAULT_ACME_WEBROOT,
  DEFAULT_HTTP_LISTEN,
  DEFAULT_HTTPS_LISTEN,
  listenList,
  validateNginxPath,
} from './nginx-settings.mts'

export const FRPS_SITE_FLAGS = {
  ...NGINX_SITE_FLAGS,
  'http-listen': {
    type: 'string',
    env: 'NGINX_HTTP_LISTEN',
    default: DEFAULT_HTTP_LISTEN.join(','),
    help: 'comma-separated listen values of the plain-http server',
  },
  'https-listen': {
    type: 'string',
    env: 'NGINX_HTTPS_LISTEN',
    default: DEFAULT_HTTPS_LISTEN.join(','),
    help: 'comma-separated listen values of the https server',
  },
  'acme-webroot': {
    type: 'string',
    path: true,
    env: 'ACME_WEBROOT',
    default: DEFAULT_ACME_WEBROOT,
    help: 'folder the site serves /.well-known/acme-challenge/ from (certbot --webroot)',
  },
  'letsencrypt-dir': {
    type: 'string',
    path: true,
    env: 'CERTBOT_CONFIG_DIR',
    default: '/etc/letsencrypt',
    help: "certbot's config dir: a certificate in live/DOMAIN/ makes the site serve https",
  },
} as const satisfies FlagSpecs

/** The site for DOMAIN into the tunnel's port; with the certificate when certbot keeps one. */
export function frpsSiteOptions(
  flags: Flags<typeof FRPS_SITE_FLAGS>,
  site: { domain: string; upstreamPort: number; log: (line: string) => void },
): InstallSiteOptions & NginxTarget {
  return {
    ...site,
    httpListen: listenList(flags['http-listen']),
    httpsListen: listenList(flags['https-listen']),
    acmeWebroot: validateNginxPath(path.resolve(flags['acme-webroot']), '--acme-webroot'),
    tls: liveCertificate(path.resolve(flags['letsencrypt-dir']), site.domain),
    ...nginxTarget(flags),
  }
}
