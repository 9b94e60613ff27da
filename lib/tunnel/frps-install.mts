// frps on the VPS, installed in order: the pinned binary, its system user and folders, the token,
// the tunnel identity, frps.toml (checked by frps first) and the service. Each step leaves what is
// already right alone; a change to the binary, config, token or identity restarts a running frps.
import fs from 'node:fs'
import { FRP_MIN_VERSION } from '../core/env.mts'
import { applyService } from '../core/service.mts'
import { frpsUnit, verifyFrpConfig, writeFrpConfig } from './frp-service.mts'
import { type FrpsSettings, frpsFiles } from './frps-settings.mts'
import { installToken } from './frps-token.mts'
import { installFrpBinary } from './release.mts'
import { ensureSystemUser, type Owner, readableBy } from './system-user.mts'
import { ensureTunnelIdentity, type TunnelIdentity } from './tunnel-identity.mts'

type Say = (line: string) => void

function makeFolders(s: FrpsSettings, owner: Owner | undefined): void {
  fs.mkdirSync(s.configDir, { recursive: true, mode: 0o755 })
  fs.mkdirSync(s.logDir, { recursive: true, mode: 0o750 })
  if (owner) fs.chownSync(s.logDir, owner.uid, owner.gid)
}

/** The CA and frps' certificate for DOMAIN; frps (its own user) reads its key, ca.key stays root's (0600). */
async function installIdentity(
  tlsDir: string,
  domain: string,
  owner: Owner | undefined,
  say: Say,
): Promise<TunnelIdentity> {
  const id = await ensureTunnelIdentity({ dir: tlsDir, serverName: domain })
  if (id.made.length > 0)
    say(
      `tunnel identity ${id.made.includes('ca') ? 'CA and certificate made' : 'certificate renewed'} in ${tlsDir}`,
    )
  readableBy(owner, id.keyFile)
  if (owner) {
    fs.chownSync(tlsDir, 0, owner.gid)
    fs.chmodSync(tlsDir, 0o750)
  }
  return id
}

/**
 * Installs frps with `config` (frpsConfigText of the same settings) and the new `token` (undefined:
 * keep the installed one). Returns the tunnel CA, which frpc-setup pins at home.
 */
export async function installFrps(
  s: FrpsSettings,
  config: string,
  token: string | undefined,
  say: Say,
): Promise<{ caFile: string }> {
  const files = frpsFiles(s)
  const binary = await installFrpBinary('frps', s, say)
  const owner = await ensureSystemUser(s.user, s.manager, say)
  makeFolders(s, owner)
  const tokenResult = installToken(files.tokenFile, token, owner, say)
  const id = await installIdentity(files.tlsDir, s.domain, owner, say)
  await verifyFrpConfig({
    kind: 'frps',
    bin: binary.bin,
    dir: s.configDir,
    text: config,
    hint: `check --frp-version (${FRP_MIN_VERSION} or later) and report this as a bug`,
  })
  const configResult = writeFrpConfig(files.configFile, config, 0o644, say)
  const service = await applyService({
    manager: s.manager,
    kind: 'systemd',
    name: 'frps.service',
    file: files.unitFile,
    content: frpsUnit({ binPath: binary.bin, configFile: files.configFile, logDir: s.logDir, user: s.user }),
    restart:
      binary.installed || configResult !== 'unchanged' || tokenResult !== 'unchanged' || id.made.length > 0,
    say,
  })
  if (service === 'unchanged') say('frps service is running and up to date')
  return { caFile: id.caFile }
}
