// VPS step: a Let's Encrypt certificate for DOMAIN, installed into the nginx site by certbot's
// nginx plugin (with the HTTP->HTTPS redirect), a deploy hook that reloads nginx after renewals,
// a renewal dry run against the same ACME server, and the expiry date.
import fs from 'node:fs'
import path from 'node:path'
import {
  buildDeployHook,
  type CertInfo,
  certbotReason,
  certFile,
  deployHookPath,
  type IssueOptions,
  isCertCurrent,
  issueArgs,
  isTestCert,
  readCertInfo,
  renewDryRunArgs,
} from '../lib/certbot.mts'
import {
  confirm,
  type FlagSpecs,
  type Flags,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/cli.mts'
import { run } from '../lib/exec.mts'
import { writeFileAtomic } from '../lib/fsutil.mts'
import { startProgress } from '../lib/health.mts'
import { validateDomain, validatePort } from '../lib/nginx.mts'

const spec = {
  usage: 'node certbot.mjs --domain DOMAIN --email EMAIL [options]   (or: npx tsx remote/certbot.mts ...)',
  summary:
    "Gets a Let's Encrypt certificate for DOMAIN with certbot's nginx plugin (the site from frps-setup must exist\n" +
    'and DNS must point at this VPS), redirects HTTP to HTTPS, installs a deploy hook that reloads nginx after\n' +
    'renewals, checks renewal with a dry run and prints the expiry date. A valid certificate is kept as is.',
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
    'nginx-server-root': {
      type: 'string',
      path: true,
      env: 'NGINX_SERVER_ROOT',
      default: '/etc/nginx',
      help: 'dir of nginx.conf',
    },
    'http-01-port': {
      type: 'string',
      env: 'CERTBOT_HTTP01_PORT',
      help: 'port the HTTP-01 challenge is served on (tests)',
    },
    'https-port': {
      type: 'string',
      env: 'CERTBOT_HTTPS_PORT',
      help: 'port nginx serves HTTPS on (tests; default 443)',
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
      help: 'nginx executable (deploy hook)',
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
    '30 days left is not re-issued. Exit codes: 0 ok, 1 certbot or nginx failed, 2 bad input.',
}

type CliFlags = Flags<typeof spec.flags>

type Opts = IssueOptions & { certbotBin: string; nginxBin: string }

function optionalPort(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw === '') return undefined
  return validatePort(Number(raw), name)
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
  return {
    domain,
    email,
    acmeServer,
    staging: Boolean(flags.staging),
    configDir: path.resolve(str('config-dir')!),
    workDir: path.resolve(str('work-dir')!),
    logsDir: path.resolve(str('logs-dir')!),
    nginxServerRoot: path.resolve(str('nginx-server-root')!),
    http01Port: optionalPort(str('http-01-port'), '--http-01-port'),
    httpsPort: optionalPort(str('https-port'), '--https-port'),
    certbotBin: str('certbot-bin')!,
    nginxBin: str('nginx-bin')!,
  }
}

async function hasNginxPlugin(o: Opts): Promise<boolean> {
  const dirs = ['--config-dir', o.configDir, '--work-dir', o.workDir, '--logs-dir', o.logsDir]
  const out = await run(o.certbotBin, ['plugins', ...dirs], { nothrow: true, timeout: '60s' })
  return out.ok && /^\* nginx$/m.test(out.stdout)
}

async function ensureCertbot(o: Opts, skip: boolean): Promise<void> {
  if (await hasNginxPlugin(o)) return
  if (skip)
    throw new RuntimeFailure(
      `${o.certbotBin} with its nginx plugin is not available`,
      'install certbot and python3-certbot-nginx, or drop --skip-install',
    )
  say('installing certbot and python3-certbot-nginx with apt-get ...')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = await run('apt-get', ['update', '-qq'], { nothrow: true, timeout: '5m', env })
  const install = update.ok
    ? await run('apt-get', ['install', '-y', '-qq', 'certbot', 'python3-certbot-nginx'], {
        nothrow: true,
        timeout: '10m',
        env,
      })
    : update
  if (!install.ok || !(await hasNginxPlugin(o)))
    throw new RuntimeFailure(
      `could not install certbot (${lastLine(install.stderr) || `exit ${install.exitCode}`})`,
      'run `apt-get install certbot python3-certbot-nginx` as root and re-run',
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

/** Whether some nginx config under the server root already uses this certificate. */
function nginxUsesCert(o: Opts): boolean {
  const wanted = path.join(o.configDir, 'live', o.domain, 'fullchain.pem')
  const seen = new Set<string>()
  const walk = (dir: string, depth: number): boolean => {
    if (depth > 3) return false
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return false
    }
    return entries.some((e) => {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) return walk(p, depth + 1)
      if (/\.bak-|~$/.test(e.name)) return false
      let real: string
      try {
        real = fs.realpathSync(p)
        if (seen.has(real) || !fs.statSync(real).isFile()) return false
      } catch {
        return false
      }
      seen.add(real)
      return fs.readFileSync(real, 'utf8').includes(`ssl_certificate ${wanted};`)
    })
  }
  return walk(o.nginxServerRoot, 0)
}

async function runCertbot(o: Opts, args: string[], label: string): Promise<void> {
  const started = Date.now()
  const stop = startProgress({ snapshot: () => ({ label, elapsedMs: Date.now() - started }) })
  try {
    const out = await run(o.certbotBin, args, { nothrow: true, timeout: '5m' })
    if (!out.ok)
      throw new RuntimeFailure(
        `${label} failed: ${certbotReason(`${out.stderr}\n${out.stdout}`)}`,
        `the HTTP site is unchanged; see ${path.join(o.logsDir, 'letsencrypt.log')}, fix the cause and re-run`,
      )
  } finally {
    stop()
  }
}

function installDeployHook(o: Opts): void {
  const hook = deployHookPath(o.configDir)
  fs.mkdirSync(path.dirname(hook), { recursive: true })
  const result = writeFileAtomic(hook, buildDeployHook(o.nginxServerRoot, o.nginxBin), {
    mode: 0o755,
    backup: true,
  })
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
  const existing = currentCert(o)
  // a staging certificate is "valid" but untrusted: replace it once a real one is asked for
  const replaceTestCert = existing !== undefined && isTestCert(existing) && !o.staging && !o.acmeServer
  const current = existing !== undefined && isCertCurrent(existing, o.domain) && !replaceTestCert
  if (!current) await agreeToTerms(o, flags.yes)
  await ensureCertbot(o, flags['skip-install'])
  if (current && nginxUsesCert(o))
    say(`certificate for ${o.domain} is valid and nginx uses it: nothing issued`)
  else {
    if (current) say(`certificate for ${o.domain} is valid: installing it into nginx`)
    if (replaceTestCert) say(`replacing the untrusted staging certificate for ${o.domain} with a real one`)
    await runCertbot(o, issueArgs({ ...o, forceRenewal: replaceTestCert }), `certbot --nginx for ${o.domain}`)
    say(`nginx serves https://${o.domain} with the certificate; http redirects to https`)
  }
  installDeployHook(o)
  if (flags['skip-renew-check']) warn('renewal dry run skipped (--skip-renew-check)')
  else {
    await runCertbot(o, renewDryRunArgs(o), 'renewal dry run')
    say('renewal dry run passed: certbot will renew this certificate on its own')
  }
  report(o, currentCert(o))
  return 0
}

await runScript('certbot', spec, main)
