import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  acmeServerName,
  buildDeployHook,
  certbotReason,
  certificateRequest,
  certonlyArgs,
  liveFiles,
  renewDryRunArgs,
  STAGING_SERVER,
} from '../../../lib/tunnel/certbot.mts'

const paths = {
  configDir: '/etc/letsencrypt',
  workDir: '/var/lib/letsencrypt',
  logsDir: '/var/log/letsencrypt',
}
const issue = {
  ...paths,
  domain: 'posthog.example.com',
  email: 'me@example.com',
  webroot: '/var/www/posthog-homelab',
}

describe('the certificate request', () => {
  const given = {
    domain: 'PostHog.Example.com',
    email: 'me@example.com',
    acmeServer: undefined,
    staging: false,
  }

  it("is the domain (lower case) and e-mail for Let's Encrypt, or another ACME server, or staging", () => {
    const request = certificateRequest(given)
    expect(request).toEqual({ domain: 'posthog.example.com', email: 'me@example.com', staging: false })
    expect(acmeServerName(request)).toBe("Let's Encrypt")
    expect(acmeServerName(certificateRequest({ ...given, staging: true }))).toBe("Let's Encrypt staging")
    const pebble = certificateRequest({ ...given, acmeServer: 'https://127.0.0.1:14000/dir' })
    expect(pebble.acmeServer).toBe('https://127.0.0.1:14000/dir')
    expect(acmeServerName(pebble)).toBe('https://127.0.0.1:14000/dir')
  })

  it.each([
    [{ domain: undefined }, /no domain: pass --domain/],
    [{ domain: 'not a host' }, /is not a hostname/],
    [{ email: undefined }, /no e-mail: pass --email/],
    [{ email: 'nobody' }, /e-mail 'nobody' is not an address/],
    [{ acmeServer: 'not a url' }, /is not a URL/],
    [{ acmeServer: 'http://x/dir' }, /must be an https:\/\/ URL/],
    [{ acmeServer: 'https://x/dir', staging: true }, /exclude each other/],
  ])('refuses %j', (over, message) => {
    expect(() => certificateRequest({ ...given, ...over })).toThrow(UsageError)
    expect(() => certificateRequest({ ...given, ...over })).toThrow(message)
  })
})

describe('certbot command lines', () => {
  it('gets the certificate with certonly --webroot, non-interactively, without touching nginx', () => {
    const args = certonlyArgs(issue)
    expect(args.slice(0, 14)).toEqual([
      'certonly',
      '--webroot',
      '-w',
      '/var/www/posthog-homelab',
      '--cert-name',
      'posthog.example.com',
      '-d',
      'posthog.example.com',
      '--non-interactive',
      '--agree-tos',
      '-m',
      'me@example.com',
      '--no-eff-email',
      '--keep-until-expiring',
    ])
    expect(args).not.toContain('--nginx')
    expect(args).not.toContain('--redirect')
    expect(args).not.toContain('--server')
  })

  it('passes the ACME server and staging through', () => {
    expect(certonlyArgs({ ...issue, staging: true })).toContain('--staging')
    const args = certonlyArgs({ ...issue, acmeServer: 'https://localhost:14000/dir' })
    expect(args.join(' ')).toContain('--server https://localhost:14000/dir')
    expect(args.join(' ')).toContain('--config-dir /etc/letsencrypt --work-dir /var/lib/letsencrypt')
  })

  it('forces a new certificate only when asked (replacing a staging one)', () => {
    const args = certonlyArgs({ ...issue, forceRenewal: true })
    expect(args).toContain('--force-renewal')
    expect(args).not.toContain('--keep-until-expiring')
  })

  it('dry-runs renewal against the same server, without the random cron sleep', () => {
    const pebble = renewDryRunArgs({ ...issue, acmeServer: 'https://localhost:14000/dir' }).join(' ')
    expect(pebble).toMatch(/^renew --dry-run --cert-name posthog\.example\.com /)
    expect(pebble).toContain('--no-random-sleep-on-renew')
    expect(pebble).toContain('--server https://localhost:14000/dir')
    expect(renewDryRunArgs({ ...issue, staging: true })).toContain(STAGING_SERVER)
    expect(renewDryRunArgs(issue)).not.toContain('--server')
  })

  it("names the files nginx serves: certbot's live/DOMAIN links", () => {
    expect(liveFiles('/etc/letsencrypt', 'posthog.example.com')).toEqual({
      certificate: '/etc/letsencrypt/live/posthog.example.com/fullchain.pem',
      key: '/etc/letsencrypt/live/posthog.example.com/privkey.pem',
    })
  })
})

describe('deploy hook', () => {
  it('tests before reloading, through systemd when present, for the system nginx', () => {
    const hook = buildDeployHook()
    expect(hook.startsWith('#!/bin/sh\n')).toBe(true)
    expect(hook).toContain("\n'nginx' -t -q\n")
    expect(hook).toContain('systemctl reload nginx')
  })

  it('names the config of a private nginx, quoted', () => {
    const hook = buildDeployHook({ nginxBin: '/usr/sbin/nginx', nginxConf: "/tmp/it's here/nginx.conf" })
    expect(hook).toContain(`'/usr/sbin/nginx' -c '/tmp/it'\\''s here/nginx.conf' -t -q`)
    expect(hook).not.toContain('systemctl')
  })

  it('is valid shell', () => {
    execFileSync('sh', ['-n', '-c', buildDeployHook({ nginxConf: '/srv/x y/nginx.conf' })])
    execFileSync('sh', ['-n', '-c', buildDeployHook()])
  })
})

describe('certbotReason', () => {
  it("takes the CA's detail from a failed validation", () => {
    const out = `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for posthog.example.com

Certbot failed to authenticate some domains (authenticator: nginx). The Certificate Authority reported these problems:
  Domain: posthog.example.com
  Type:   connection
  Detail: 127.0.0.2: Fetching http://posthog.example.com/.well-known/acme-challenge/x: Connection refused

Hint: The Certificate Authority failed to verify the temporary nginx configuration changes made by Certbot.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`
    expect(certbotReason(out)).toBe(
      'connection: 127.0.0.2: Fetching http://posthog.example.com/.well-known/acme-challenge/x: Connection refused',
    )
  })

  it('takes the error line otherwise', () => {
    const out = `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Could not automatically find a matching server block for posthog.example.com. Set the \`server_name\` directive to use the Nginx installer.
Ask for help or search for solutions at https://community.letsencrypt.org.`
    expect(certbotReason(out)).toMatch(/^Could not automatically find a matching server block/)
    expect(certbotReason('An unexpected error occurred:\nAttributeError: x')).toBe('AttributeError: x')
  })
})
