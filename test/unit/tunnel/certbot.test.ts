import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  buildDeployHook,
  certbotReason,
  certonlyArgs,
  isCertCurrent,
  isTestCert,
  liveFiles,
  readCertInfo,
  renewDryRunArgs,
  STAGING_SERVER,
} from '../../../lib/tunnel/certbot.mts'
import { scratchDir } from '../../helpers/common.ts'

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

describe('certificate info', () => {
  let dir: string
  const makeCert = (days: number, name: string): string => {
    const out = path.join(dir, `${name}-${days}.pem`)
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        path.join(dir, 'k.pem'),
        '-out',
        out,
      ].concat(['-days', String(days), '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`]),
      { stdio: 'ignore', timeout: 30_000 },
    )
    return fs.readFileSync(out, 'utf8')
  }
  beforeAll(() => {
    dir = scratchDir('certbot-unit-')
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('reads expiry, names and days left', () => {
    const info = readCertInfo(makeCert(90, 'posthog.example.com'))
    expect(info.names).toEqual(['posthog.example.com'])
    expect(info.daysLeft).toBeGreaterThanOrEqual(89)
    expect(isCertCurrent(info, 'posthog.example.com')).toBe(true)
    expect(isCertCurrent(info, 'other.example.com')).toBe(false)
  })

  it("recognises Let's Encrypt staging certificates", () => {
    const info = readCertInfo(makeCert(90, 'posthog.example.com'))
    expect(isTestCert(info)).toBe(false)
    expect(
      isTestCert({ ...info, issuer: "C=US, O=(STAGING) Let's Encrypt, CN=(STAGING) Counterfeit Cashew R10" }),
    ).toBe(true)
  })

  it('treats a certificate certbot would renew as not current', () => {
    expect(isCertCurrent(readCertInfo(makeCert(20, 'posthog.example.com')), 'posthog.example.com')).toBe(
      false,
    )
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
