import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RuntimeFailure } from '../../../lib/core/cli.mts'
import { liveFiles } from '../../../lib/tunnel/certbot.mts'
import {
  type CertInfo,
  certificateAction,
  describeCertificate,
  installedCertificate,
  isCertCurrent,
  isTestCert,
  liveCertificate,
  readCertInfo,
  readCurrentCert,
} from '../../../lib/tunnel/certificate.mts'
import { scratchDir } from '../../helpers/common.ts'

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

describe('what to do about the certificate', () => {
  const domain = 'posthog.example.com'
  const request = { domain, staging: false }
  const cert = (over: Partial<CertInfo> = {}): CertInfo => ({
    notAfter: new Date('2030-01-31T12:00:00Z'),
    daysLeft: 80,
    names: [domain],
    issuer: "C=US, O=Let's Encrypt, CN=R11",
    ...over,
  })
  const staging = cert({ issuer: "C=US, O=(STAGING) Let's Encrypt, CN=(STAGING) Counterfeit Cashew R10" })

  it('gets one when there is none, or when certbot would renew it, or it names another domain', () => {
    expect(certificateAction(undefined, request)).toEqual({ kind: 'issue' })
    expect(certificateAction(cert({ daysLeft: 20 }), request)).toEqual({ kind: 'issue' })
    expect(certificateAction(cert({ names: ['other.example.com'] }), request)).toEqual({ kind: 'issue' })
  })

  it('keeps a current one', () => {
    expect(certificateAction(cert(), request)).toEqual({ kind: 'keep', daysLeft: 80 })
  })

  it('replaces a staging one once a real one is asked for, and keeps it while staging is asked for', () => {
    expect(certificateAction(staging, request)).toEqual({ kind: 'replace-test-cert' })
    expect(certificateAction(staging, { ...request, staging: true })).toEqual({ kind: 'keep', daysLeft: 80 })
    expect(certificateAction(staging, { ...request, acmeServer: 'https://127.0.0.1:14000/dir' })).toEqual({
      kind: 'keep',
      daysLeft: 80,
    })
  })

  it('says when it expires and who issued it', () => {
    expect(describeCertificate(domain, cert())).toBe(
      "certificate for posthog.example.com: expires 2030-01-31 (80 days left), issuer C=US, O=Let's Encrypt, CN=R11",
    )
  })
})

describe('the certificate in live/DOMAIN/', () => {
  let dir: string
  beforeAll(() => {
    dir = scratchDir('certificate-live-')
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('is none before certbot made it, and a missing one after a run is a failure', () => {
    expect(readCurrentCert(dir, 'none.example.com')).toBeUndefined()
    expect(liveCertificate(dir, 'none.example.com')).toBeUndefined()
    expect(() => installedCertificate(dir, 'none.example.com')).toThrow(RuntimeFailure)
  })

  it('is read from cert.pem; the site serves fullchain.pem and privkey.pem once both are there', () => {
    const domain = 'live.example.com'
    const live = path.join(dir, 'live', domain)
    fs.mkdirSync(live, { recursive: true })
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
        '-keyout',
        path.join(live, 'privkey.pem'),
        '-out',
        path.join(live, 'cert.pem'),
        '-days',
        '60',
        '-subj',
        `/CN=${domain}`,
        '-addext',
        `subjectAltName=DNS:${domain}`,
      ]),
      { stdio: 'ignore', timeout: 30_000 },
    )
    expect(liveCertificate(dir, domain)).toBeUndefined()
    fs.copyFileSync(path.join(live, 'cert.pem'), path.join(live, 'fullchain.pem'))
    expect(liveCertificate(dir, domain)).toEqual(liveFiles(dir, domain))
    expect(readCurrentCert(dir, domain)?.names).toEqual([domain])
    expect(installedCertificate(dir, domain).daysLeft).toBeGreaterThanOrEqual(59)
  })

  it('is none when cert.pem cannot be read as a certificate', () => {
    const live = path.join(dir, 'live', 'broken.example.com')
    fs.mkdirSync(live, { recursive: true })
    fs.writeFileSync(path.join(live, 'cert.pem'), 'not a certificate')
    expect(readCurrentCert(dir, 'broken.example.com')).toBeUndefined()
  })
})
