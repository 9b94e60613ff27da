// VPS step: a Let's Encrypt certificate for DOMAIN with `certbot certonly --webroot` (certbot edits
// no nginx file: the challenge is answered from the webroot the toolkit's site serves), then the
// whole nginx site rendered again with the certificate (port 80 redirects, 443 serves), a deploy
// hook that reloads nginx after renewals, a renewal dry run against the same ACME server, and the
// expiry date.
import fs from 'node:fs'
import path from 'node:path'
import {
  confirm,
  defineScript,
  type FlagSpecs,
  type Flags,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { run } from '../lib/core/exec.mts'
import { readIfExists, writeFileAtomic } from '../lib/core/fs.mts'
import { startProgress } from '../lib/core/health.mts'
import {
  buildDeployHook,
  type CertInfo,
  certbotReason,
  certFile,
  certonlyArgs,
  deployHookPath,
  type IssueOptions,
  isCertCurrent,
  isTestCert,
  liveFiles,
  readCertInfo,
  renewDryRunArgs,
} from '../lib/tunnel/certbot.mts'
import {
  installNginxSite,
  nginxControl,
  recordedSettings,
  type SiteSettings,
  siteFile,
  validateDomain,
} from '../lib/tunnel/nginx.mts'

const spec = defineScript({
  usage: 'node certbot.mjs --domain DOMAIN --email EMAIL [options]   (or: npx tsx remote/certbot.mts ...)',
  summary:
    "Gets a Let's Encrypt certificate for DOMAIN with `certbot certonly --webroot` (the nginx site from frps-setup\n" +
    'must exist and DNS must point at this VPS), then writes the https site: port 80 redirects, port 443 serves\n' +
    'with the certificate. Installs a deploy hook that reloads nginx after renewals, checks renewal with a dry\n' +
    'run and prints the expiry date. A valid certificate is kept as is.',
  flags: {
    domain: { type: 'string', env: 'DOMAIN', help: 'public hostname of PostHog, e.g. posthog.example.com' },
    email: { type: 'string', env: 'CERTBOT_EMAIL', help: "address for Let's Encrypt expiry notices" },
    yes: { type: 'boolean', help: "agree to the ACME server's terms of service without asking" },
    staging: {
      type: 'boolean',
      env: 'CERTBOT_STAGING',
      help: "use Let's Encrypt staging (untrusted test certificates)",
    },
    'acme-server': {
      type: 'string',
      env: 'CERTBOT_ACME_SERVER',
      help: "ACME directory URL instead of Let's Encrypt",
    },
    'config-dir': {
      type: 'string',
      path: true,
      env: 'CERTBOT_CONFIG_DIR',
      default: '/etc/letsencrypt',
      help: 'certbot config dir',
    },
    'work-dir': {
      type: 'string',
      path: true,
      env: 'CERTBOT_WORK_DIR',
      default: '/var/lib/letsencrypt',
      help: 'certbot work dir',
    },
    'logs-dir': {
      type: 'string',
      path: true,
      env: 'CERTBOT_LOGS_DIR',
      default: '/var/log/letsencrypt',
      help: 'certbot logs dir',
    },
    'sites-available-dir': {
      type: 'string',
      path: true,
      env: 'NGINX_SITES_AVAILABLE',
      default: '/etc/nginx/sites-available',
      help: 'where frps-setup wrote the site (RHEL-style: /etc/nginx/conf.d)',
    },
    'sites-enabled-dir': {
      type: 'string',
      path: true,
      env: 'NGINX_SITES_ENABLED',
      default: '/etc/nginx/sites-enabled',
      help: "where it is enabled with a symlink ('' for none)",
    },
    'nginx-conf': {
      type: 'string',
      path: true,
      env: 'NGINX_CONF',
      help: 'nginx.conf to test and reload with -c (tests)',
    },
    'certbot-bin': {
      type: 'string',
      path: true,
      env: 'CERTBOT_BIN',
      default: 'certbot',
      help: 'certbot executable',
    },
    'nginx-bin': {
      type: 'string',
      path: true,
      env: 'NGINX_BIN',
      default: 'nginx',
      help: 'nginx executable',
    },
    'skip-install': {
      type: 'boolean',
      env: 'CERTBOT_SKIP_INSTALL',
      help: 'do not apt-get install certbot when missing',
    },
    'skip-renew-check': { type: 'boolean', help: 'skip the `certbot renew --dry-run` check' },
  } satisfies FlagSpecs,
  notes:
    'Needs root on a real VPS (ports 80/443, /etc/letsencrypt). Re-running is safe: a certificate with more than\n' +
    '30 days left is not re-issued, and a site that is already right is not touched.\n' +
    'Exit codes: 0 ok, 1 certbot or nginx failed (or no site from frps-setup), 2 bad input.',
})

type CliFlags = Flags<typeof spec.flags>

interface Opts extends Omit<IssueOptions, 'webroot'> {
  certbotBin: string
  nginxBin: string
  nginxConf?: string
  sitesAvailableDir: string
  sitesEnabledDir?: string
}

function checkUrl(raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new UsageError(`--acme-server '${raw}' is not a URL: use the ACME directory, e.g. https://host/dir`)
  }
  if (url.protocol !== 'https:') throw new UsageError(`--acme-server '${raw}' must be an https:// URL`)
  return raw
}

function readOptions(flags: CliFlags): Opts {
  const str = (k: keyof CliFlags) => flags[k] as string | undefined
  if (!str('domain')) throw new UsageError('no domain: pass --domain posthog.example.com (or set DOMAIN)')
  const domain = validateDomain(str('domain')!)
  const email = str('email') ?? ''
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
    throw new UsageError(
      email
        ? `e-mail '${email}' is not an address`
        : 'no e-mail: pass --email you@example.com (or set CERTBOT_EMAIL)',
    )
  const acmeServer = str('acme-server') ? checkUrl(str('acme-server')!) : undefined
  if (acmeServer && flags.staging)
    throw new UsageError('--staging and --acme-server exclude each other: pick one')
  const enabled = str('sites-enabled-dir')
  return {
    domain,
    email,
    acmeServer,
    staging: Boolean(flags.staging),
    configDir: path.resolve(str('config-dir')!),
    workDir: path.resolve(str('work-dir')!),
    logsDir: path.resolve(str('logs-dir')!),
    certbotBin: str('certbot-bin')!,
    nginxBin: str('nginx-bin')!,
    ...(str('nginx-conf') ? { nginxConf: path.resolve(str('nginx-conf')!) } : {}),
    sitesAvailableDir: path.resolve(str('sites-available-dir')!),
    ...(enabled ? { sitesEnabledDir: path.resolve(enabled) } : {}),
  }
}

/** The settings frps-setup recorded in the site; the certificate is validated through that site. */
function readSite(o: Opts): SiteSettings {
  const file = siteFile(o.sitesAvailableDir, o.domain)
  const text = readIfExists(file)
  if (text === undefined)
    throw new RuntimeFailure(
      `no nginx site for ${o.domain} (${file} is missing), so nothing answers the certificate challenge`,
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

async function hasWebrootPlugin(o: Opts): Promise<boolean> {
  const dirs = ['--config-dir', o.configDir, '--work-dir', o.workDir, '--logs-dir', o.logsDir]
  const out = await run(o.certbotBin, ['plugins', ...dirs], { nothrow: true, timeout: '60s' })
  return out.ok && /^\* webroot$/m.test(out.stdout)
}

async function ensureCertbot(o: Opts, skip: boolean): Promise<void> {
  if (await hasWebrootPlugin(o)) return
  if (skip)
    throw new RuntimeFailure(`${o.certbotBin} is not available`, 'install certbot, or drop --skip-install')
  say('installing certbot with apt-get ...')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = await run('apt-get', ['update', '-qq'], { nothrow: true, timeout: '5m', env })
  const install = update.ok
    ? await run('apt-get', ['install', '-y', '-qq', 'certbot'], { nothrow: true, timeout: '10m', env })
    : update
  if (!install.ok || !(await hasWebrootPlugin(o)))
    throw new RuntimeFailure(
      `could not install certbot (${lastLine(install.stderr) || `exit ${install.exitCode}`})`,
      'run `apt-get install certbot` as root and re-run',
    )
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? ''
}

function currentCert(o: Opts): CertInfo | undefined {
  const file = certFile(o.configDir, o.domain)
  if (!fs.existsSync(file)) return undefined
  try {
    return readCertInfo(fs.readFileSync(file))
  } catch {
    return undefined
  }
}

async function runCertbot(o: Opts, args: string[], label: string, state: string): Promise<void> {
  const started = Date.now()
  const stop = startProgress({ snapshot: () => ({ label, elapsedMs: Date.now() - started }) })
  try {
    const out = await run(o.certbotBin, args, { nothrow: true, timeout: '5m' })
    if (!out.ok)
      throw new RuntimeFailure(
        `${label} failed: ${certbotReason(`${out.stderr}\n${out.stdout}`)}`,
        `${state}; see ${path.join(o.logsDir, 'letsencrypt.log')}, fix the cause and re-run`,
      )
  } finally {
    stop()
  }
}

/** The whole site again, now with the certificate: port 80 redirects, port 443 serves. */
async function installHttpsSite(o: Opts, settings: SiteSettings): Promise<void> {
  await installNginxSite({
    domain: o.domain,
    ...settings,
    tls: liveFiles(o.configDir, o.domain),
    sitesAvailableDir: o.sitesAvailableDir,
    ...(o.sitesEnabledDir ? { sitesEnabledDir: o.sitesEnabledDir } : {}),
    ...nginxControl(o.nginxBin, o.nginxConf),
    log: say,
  })
}

function installDeployHook(o: Opts): void {
  const hook = deployHookPath(o.configDir)
  fs.mkdirSync(path.dirname(hook), { recursive: true })
  const text = buildDeployHook({ nginxBin: o.nginxBin, ...(o.nginxConf ? { nginxConf: o.nginxConf } : {}) })
  const result = writeFileAtomic(hook, text, { mode: 0o755, backup: true })
  if (result !== 'unchanged')
    say(`deploy hook ${result}: ${hook} (tests and reloads nginx after each renewal)`)
  // certbot runs every executable file in the hooks folder: a kept copy of an old hook must not run.
  const dir = path.dirname(hook)
  for (const name of fs.readdirSync(dir))
    if (name.startsWith(`${path.basename(hook)}.bak-`)) fs.chmodSync(path.join(dir, name), 0o644)
}

function report(o: Opts, info: CertInfo | undefined): void {
  if (!info) throw new RuntimeFailure(`certbot finished but ${certFile(o.configDir, o.domain)} is missing`)
  const day = info.notAfter.toISOString().slice(0, 10)
  say(`certificate for ${o.domain}: expires ${day} (${info.daysLeft} days left), issuer ${info.issuer}`)
}

async function agreeToTerms(o: Opts, yes: boolean): Promise<void> {
  const where = o.acmeServer ?? (o.staging ? "Let's Encrypt staging" : "Let's Encrypt")
  const question = `Agree to ${where}'s terms of service and request a certificate for ${o.domain}?`
  if (!(await confirm(question, yes, 'agree to the ACME terms of service')))
    throw new UsageError('not agreed: nothing was requested')
}

async function main(flags: CliFlags): Promise<number> {
  const o = readOptions(flags)
  const settings = readSite(o)
  const existing = currentCert(o)
  // a staging certificate is "valid" but untrusted: replace it once a real one is asked for
  const replaceTestCert = existing !== undefined && isTestCert(existing) && !o.staging && !o.acmeServer
  const current = existing !== undefined && isCertCurrent(existing, o.domain) && !replaceTestCert
  if (!current) await agreeToTerms(o, flags.yes)
  await ensureCertbot(o, flags['skip-install'])
  if (current) say(`certificate for ${o.domain} is valid (${existing!.daysLeft} days left): nothing issued`)
  else {
    if (replaceTestCert) say(`replacing the untrusted staging certificate for ${o.domain} with a real one`)
    fs.mkdirSync(settings.acmeWebroot, { recursive: true, mode: 0o755 })
    const args = certonlyArgs({ ...o, webroot: settings.acmeWebroot, forceRenewal: replaceTestCert })
    await runCertbot(o, args, `certbot certonly for ${o.domain}`, 'the nginx site is unchanged')
  }
  await installHttpsSite(o, settings)
  say(`nginx serves https://${o.domain} with the certificate; http redirects to https`)
  installDeployHook(o)
  if (flags['skip-renew-check']) warn('renewal dry run skipped (--skip-renew-check)')
  else {
    await runCertbot(
      o,
      renewDryRunArgs(o),
      'renewal dry run',
      'https keeps working until the certificate expires',
    )
    say('renewal dry run passed: certbot will renew this certificate on its own')
  }
  report(o, currentCert(o))
  return 0
}

await runScript('certbot', spec, main)
