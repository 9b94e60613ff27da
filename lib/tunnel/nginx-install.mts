// Where the nginx site lives and how it is put there: an atomic write with a backup, the
// sites-enabled link, `nginx -t` before every reload, and the previous files put back when the
// test fails. Also reads back the settings an installed site recorded (certbot renders the same
// site with the certificate).
import fs from 'node:fs'
import path from 'node:path'
import { type FlagSpecs, type Flags, RuntimeFailure } from '../core/cli.mts'
import { backupFile, readIfExists, type WriteResult, writeFileAtomic } from '../core/fs.mts'
import { type NginxControl, nginxControl, testNginx } from './nginx-control.mts'
import { type SiteSettings, siteSettingsOf, validateDomain } from './nginx-settings.mts'
import { buildNginxSite, recordedSettings, type SiteOptions } from './nginx-site.mts'

/** The flags both VPS steps share to say where the site goes and which nginx serves it. */
export const NGINX_SITE_FLAGS = {
  'sites-available-dir': {
    type: 'string',
    path: true,
    env: 'NGINX_SITES_AVAILABLE',
    default: '/etc/nginx/sites-available',
    help: 'where the site file is (RHEL-style: /etc/nginx/conf.d)',
  },
  'sites-enabled-dir': {
    type: 'string',
    path: true,
    env: 'NGINX_SITES_ENABLED',
    default: '/etc/nginx/sites-enabled',
    help: "where it is enabled with a symlink ('' for none)",
  },
  'nginx-bin': { type: 'string', path: true, env: 'NGINX_BIN', default: 'nginx', help: 'nginx executable' },
  'nginx-conf': {
    type: 'string',
    path: true,
    env: 'NGINX_CONF',
    help: 'nginx.conf to test and reload with -c (tests)',
  },
} as const satisfies FlagSpecs

/** Where the site goes and which nginx tests and reloads it. */
export interface NginxTarget {
  /** Where the site file lives (Debian: /etc/nginx/sites-available; RHEL-style: /etc/nginx/conf.d). */
  sitesAvailableDir: string
  /** When set, the site is enabled with a symlink here (Debian: /etc/nginx/sites-enabled). */
  sitesEnabledDir?: string
  nginxBin: string
  /** A private nginx started with `-c CONF` (tests): tested and reloaded with it. */
  nginxConf?: string
}

export function nginxTarget(flags: Flags<typeof NGINX_SITE_FLAGS>): NginxTarget {
  const enabled = flags['sites-enabled-dir']
  const conf = flags['nginx-conf']
  return {
    sitesAvailableDir: path.resolve(flags['sites-available-dir']),
    ...(enabled ? { sitesEnabledDir: path.resolve(enabled) } : {}),
    nginxBin: flags['nginx-bin'],
    ...(conf ? { nginxConf: path.resolve(conf) } : {}),
  }
}

export interface InstallSiteOptions extends SiteOptions, Omit<NginxTarget, 'nginxBin'> {
  /** Default `nginx`. */
  nginxBin?: string
  /** Arguments for the config test instead of `-t` (tests). */
  nginxTestArgs?: string[]
  /** Reloads nginx after a passed test instead of `systemctl reload-or-restart nginx` or `nginx -s reload`. */
  reload?: () => Promise<void>
  log: (line: string) => void
}

export function siteFileName(domain: string): string {
  return `${validateDomain(domain)}.conf`
}

export function siteFile(sitesAvailableDir: string, domain: string): string {
  return path.join(sitesAvailableDir, siteFileName(domain))
}

/** The settings the installed site for `domain` recorded; a RuntimeFailure when there is no such site. */
export function readInstalledSite(sitesAvailableDir: string, domain: string): SiteSettings {
  const file = siteFile(sitesAvailableDir, domain)
  const text = readIfExists(file)
  if (text === undefined)
    throw new RuntimeFailure(
      `no nginx site for ${domain} (${file} is missing), so nothing answers the certificate challenge`,
      'run frps-setup with this --domain first (or pass --sites-available-dir)',
    )
  const settings = recordedSettings(text)
  if (!settings)
    throw new RuntimeFailure(
      `${file} was not written by this version of frps-setup`,
      're-run frps-setup first: it takes the site over and keeps the certificate and https',
    )
  return settings
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

function controlOf(opts: InstallSiteOptions): NginxControl {
  const standard = nginxControl(opts.nginxBin ?? 'nginx', opts.nginxConf)
  return {
    nginxBin: standard.nginxBin,
    testArgs: opts.nginxTestArgs ?? standard.testArgs,
    reload: opts.reload ?? standard.reload,
  }
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
  const control = controlOf(opts)
  const failure = await testNginx(control, file)
  if (failure) {
    restore(file, link, snapshot)
    if (backup) fs.rmSync(backup, { force: true })
    throw failure
  }
  await control.reload()
  opts.log(`${describeChange(file, result, backup, existing)}; nginx -t passed, reloaded`)
  return result === 'unchanged' ? 'updated' : result
}
