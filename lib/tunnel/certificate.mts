// The certificate certbot keeps for DOMAIN: reading its expiry, names and issuer, and deciding
// whether to keep it, get one, or replace an untrusted staging one with a real one.
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import { RuntimeFailure } from '../core/cli.mts'
import { type CertificateRequest, certFile, liveFiles } from './certbot.mts'
import type { TlsFiles } from './nginx-settings.mts'

/** certbot before 4.0 (Debian 12 ships 2.1.0) renews when fewer than 30 days are left. */
export const RENEW_BEFORE_DAYS = 30

export interface CertInfo {
  notAfter: Date
  daysLeft: number
  names: string[]
  issuer: string
}

export function readCertInfo(pem: string | Buffer, now = new Date()): CertInfo {
  const cert = new X509Certificate(pem)
  const notAfter = new Date(cert.validTo)
  const names = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase())
  return {
    notAfter,
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000),
    names,
    issuer: cert.issuer.replace(/\n/g, ', '),
  }
}

/** True when the certificate covers `domain` and certbot would not renew it yet. */
export function isCertCurrent(info: CertInfo, domain: string): boolean {
  return info.names.includes(domain.toLowerCase()) && info.daysLeft > RENEW_BEFORE_DAYS
}

/** Let's Encrypt staging issuers are named "(STAGING) ..." (older: "Fake LE ..."). */
export function isTestCert(info: CertInfo): boolean {
  return /\(STAGING\)|Fake LE/i.test(info.issuer)
}

/** The certificate in live/DOMAIN/, or undefined when there is none (or it cannot be read). */
export function readCurrentCert(configDir: string, domain: string): CertInfo | undefined {
  const file = certFile(configDir, domain)
  if (!fs.existsSync(file)) return undefined
  try {
    return readCertInfo(fs.readFileSync(file))
  } catch {
    return undefined
  }
}

/** The certificate certbot just got or kept; its absence after a run is a failure. */
export function installedCertificate(configDir: string, domain: string): CertInfo {
  const info = readCurrentCert(configDir, domain)
  if (!info) throw new RuntimeFailure(`certbot finished but ${certFile(configDir, domain)} is missing`)
  return info
}

/** The files certbot keeps for DOMAIN, when there are some: the site then serves https. */
export function liveCertificate(configDir: string, domain: string): TlsFiles | undefined {
  const files = liveFiles(configDir, domain)
  return fs.existsSync(files.certificate) && fs.existsSync(files.key) ? files : undefined
}

/** What to do about the certificate: keep it, get one, or replace a staging one with a real one. */
export type CertificateAction =
  | { kind: 'keep'; daysLeft: number }
  | { kind: 'issue' }
  | { kind: 'replace-test-cert' }

export function certificateAction(
  existing: CertInfo | undefined,
  request: Pick<CertificateRequest, 'domain' | 'staging' | 'acmeServer'>,
): CertificateAction {
  if (!existing) return { kind: 'issue' }
  // a staging certificate is "valid" but untrusted: replace it once a real one is asked for
  if (isTestCert(existing) && !request.staging && !request.acmeServer) return { kind: 'replace-test-cert' }
  return isCertCurrent(existing, request.domain)
    ? { kind: 'keep', daysLeft: existing.daysLeft }
    : { kind: 'issue' }
}

/** `certificate for DOMAIN: expires 2025-01-31 (89 days left), issuer ...`. */
export function describeCertificate(domain: string, info: CertInfo): string {
  const day = info.notAfter.toISOString().slice(0, 10)
  return `certificate for ${domain}: expires ${day} (${info.daysLeft} days left), issuer ${info.issuer}`
}
