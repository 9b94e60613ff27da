// Tunnel identity: a small private CA and a server certificate for frps, made with openssl, so
// frpc (given the CA with `frpc-setup --frps-ca`) can check it talks to the real VPS. Without it
// frpc encrypts but accepts any server (frp sets InsecureSkipVerify when no trustedCaFile is set).
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from '../core/cli.mts'
import { lastLine, run } from '../core/exec.mts'
import { writeFileAtomic } from '../core/fs.mts'

export interface TunnelIdentity {
  caFile: string
  certFile: string
  keyFile: string
  /** What was made on this run: 'ca' (and with it a new server cert), 'cert', or nothing. */
  made: Array<'ca' | 'cert'>
}

export interface IdentityOptions {
  dir: string
  /** Name on the server certificate; frpc's serverName must be the same. */
  serverName: string
  opensslBin?: string
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

export function identityPaths(dir: string): Omit<TunnelIdentity, 'made'> {
  return {
    caFile: path.join(dir, 'ca.crt'),
    certFile: path.join(dir, 'server.crt'),
    keyFile: path.join(dir, 'server.key'),
  }
}

/** The extensions file for the server certificate (openssl's own config syntax, one line each). */
export function serverCertExtensions(serverName: string): string {
  if (!/^[A-Za-z0-9.-]+$/.test(serverName)) throw new Error(`'${serverName}' is not a hostname`)
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    `subjectAltName = DNS:${serverName}`,
    '',
  ].join('\n')
}

async function openssl(bin: string, args: string[], what: string): Promise<string> {
  const r = await run(bin, args, { nothrow: true, timeout: '60s' })
  if (r.exitCode !== 0)
    throw new RuntimeFailure(
      `openssl failed to ${what}: ${lastLine(r) || `exit ${r.exitCode}`}`,
      'check that openssl (1.1.1 or later) is installed',
    )
  return r.stdout
}

async function certMatches(
  bin: string,
  certFile: string,
  caFile: string,
  serverName: string,
): Promise<boolean> {
  if (!fs.existsSync(certFile)) return false
  const host = await run(bin, ['x509', '-in', certFile, '-noout', '-checkhost', serverName], {
    nothrow: true,
    timeout: '30s',
  })
  if (host.exitCode !== 0 || !/ does match /.test(host.stdout)) return false
  const chain = await run(bin, ['verify', '-CAfile', caFile, certFile], { nothrow: true, timeout: '30s' })
  return chain.exitCode === 0
}

/**
 * Makes (once) the CA and a server certificate for `serverName` in `dir`; keeps what exists and
 * still fits, so re-runs change nothing. Keys are mode 0600; the CA key never leaves `dir`.
 */
export async function ensureTunnelIdentity(o: IdentityOptions): Promise<TunnelIdentity> {
  const bin = o.opensslBin ?? 'openssl'
  const { caFile, certFile, keyFile } = identityPaths(o.dir)
  const caKey = path.join(o.dir, 'ca.key')
  const made: TunnelIdentity['made'] = []
  fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 })
  if (!fs.existsSync(caFile) || !fs.existsSync(caKey)) {
    await openssl(
      bin,
      [
        'req',
        '-x509',
        ...EC,
        '-keyout',
        caKey,
        '-out',
        caFile,
        '-days',
        '3650',
        '-subj',
        '/CN=posthog-homelab frps CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      'make the tunnel CA',
    )
    fs.chmodSync(caKey, 0o600)
    made.push('ca')
  }
  if (
    made.includes('ca') ||
    !fs.existsSync(keyFile) ||
    !(await certMatches(bin, certFile, caFile, o.serverName))
  ) {
    const csr = path.join(o.dir, 'server.csr')
    const ext = path.join(o.dir, 'server.ext')
    await openssl(
      bin,
      ['req', '-new', ...EC, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${o.serverName}`],
      'make the frps key',
    )
    fs.chmodSync(keyFile, 0o600)
    writeFileAtomic(ext, serverCertExtensions(o.serverName))
    await openssl(
      bin,
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caFile,
        '-CAkey',
        caKey,
        '-set_serial',
        `0x${Date.now().toString(16)}`,
        '-days',
        '3650',
        '-extfile',
        ext,
        '-out',
        certFile,
      ],
      'sign the frps certificate',
    )
    fs.rmSync(csr, { force: true })
    fs.rmSync(ext, { force: true })
    made.push('cert')
  }
  return { caFile, certFile, keyFile, made }
}
