// VPS step: a Let's Encrypt certificate for DOMAIN with `certbot certonly --webroot` (certbot edits
// no nginx file: the challenge is answered from the webroot the toolkit's site serves), then the
// whole nginx site rendered again with the certificate (port 80 redirects, 443 serves), a deploy
// hook that reloads nginx after renewals, a renewal dry run against the same ACME server, and the
// expiry date.
import path from 'node:path'
import {
  confirm,
  defineScript,
  type FlagSpecs,
  type Flags,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import {
  acmeServerName,
  type CertificateRequest,
  certificateRequest,
  liveFiles,
} from '../lib/tunnel/certbot.mts'
import {
  type Certbot,
  checkRenewal,
  ensureCertbot,
  installDeployHook,
  obtainCertificate,
} from '../lib/tunnel/certbot-run.mts'
import {
  certificateAction,
  describeCertificate,
  installedCertificate,
  readCurrentCert,
} from '../lib/tunnel/certificate.mts'
import {
  installNginxSite,
  NGINX_SITE_FLAGS,
  nginxTarget,
  readInstalledSite,
} from '../lib/tunnel/nginx-install.mts'
import { DOMAIN_FLAG } from '../lib/tunnel/nginx-settings.mts'

const spec = defineScript({
  usage: 'node certbot.mjs --domain DOMAIN --email EMAIL [options]   (or: npx tsx remote/certbot.mts ...)',
  summary:
    "Gets a Let's Encrypt certificate for DOMAIN with `certbot certonly --webroot` (the nginx site from frps-setup\n" +
    'must exist and DNS must point at this VPS), then writes the https site: port 80 redirects, port 443 serves\n' +
    'with the certificate. Installs a deploy hook that reloads nginx after renewals, checks renewal with a dry\n' +
    'run and prints the expiry date. A valid certificate is kept as is.',
  flags: {
    domain: DOMAIN_FLAG,
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
    ...NGINX_SITE_FLAGS,
    'certbot-bin': {
      type: 'string',
      path: true,
      env: 'CERTBOT_BIN',
      default: 'certbot',
      help: 'certbot executable',
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

async function agreeToTerms(request: CertificateRequest, yes: boolean): Promise<void> {
  const question = `Agree to ${acmeServerName(request)}'s terms of service and request a certificate for ${request.domain}?`
  if (!(await confirm(question, yes, 'agree to the ACME terms of service')))
    throw new UsageError('not agreed: nothing was requested')
}

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const request = certificateRequest({
    domain: flags.domain,
    email: flags.email,
    acmeServer: flags['acme-server'],
    staging: flags.staging,
  })
  const { domain } = request
  const certbot: Certbot = {
    certbotBin: flags['certbot-bin'],
    configDir: path.resolve(flags['config-dir']),
    workDir: path.resolve(flags['work-dir']),
    logsDir: path.resolve(flags['logs-dir']),
  }
  const nginx = nginxTarget(flags)
  // the certificate is validated through the site frps-setup wrote, so it must be there first
  const settings = readInstalledSite(nginx.sitesAvailableDir, domain)
  const action = certificateAction(readCurrentCert(certbot.configDir, domain), request)
  if (action.kind !== 'keep') await agreeToTerms(request, flags.yes)
  await ensureCertbot(certbot, flags['skip-install'], say)
  await obtainCertificate(certbot, request, settings.acmeWebroot, action, say)

  // the whole site again, now with the certificate: port 80 redirects, port 443 serves
  await installNginxSite({
    domain,
    ...settings,
    tls: liveFiles(certbot.configDir, domain),
    ...nginx,
    log: say,
  })
  say(`nginx serves https://${domain} with the certificate; http redirects to https`)
  installDeployHook(certbot.configDir, nginx, say)
  if (flags['skip-renew-check']) warn('renewal dry run skipped (--skip-renew-check)')
  else await checkRenewal(certbot, request, say)
  say(describeCertificate(domain, installedCertificate(certbot.configDir, domain)))
  return 0
}

await runScript('certbot', spec, main)
