// frpc at home, installed in order: the pinned binary, its folders, frpc.toml (checked by frpc
// first) with the pinned frps CA, and the service that starts it at boot. What is already right is
// left alone; a new binary, config or CA restarts a running frpc. Run with sudo, so .env is kept
// the file of the user who owns it.
import fs from 'node:fs'
import path from 'node:path'
import { FRP_MIN_VERSION } from '../core/env.mts'
import { type EnsureResult, ensureEnvFile } from '../core/env-file.mts'
import { type WriteResult, writeFileAtomic } from '../core/fs.mts'
import { applyService, type ServiceManager } from '../core/service.mts'
import { verifyFrpConfig, writeFrpConfig } from './frp-service.mts'
import { type FrpcFolders, type FrpsCa, frpcService } from './frpc-settings.mts'
import { installFrpBinary } from './release.mts'

type Say = (line: string) => void

/** PostHog's secrets and the tunnel token, generated into .env when empty (as `up` would). */
const HOME_SECRETS = ['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS', 'FRP_TOKEN']

/** ensureEnvFile with the home secrets; under sudo the file stays owned by whoever owned it (or its folder). */
export function ensureHomeEnv(envFile: string): EnsureResult {
  const before = fs.statSync(fs.existsSync(envFile) ? envFile : path.dirname(envFile))
  const ensured = ensureEnvFile({ envFile, secretKeys: HOME_SECRETS })
  const after = fs.statSync(envFile)
  if (process.getuid?.() === 0 && (after.uid !== before.uid || after.gid !== before.gid))
    fs.chownSync(envFile, before.uid, before.gid)
  return ensured
}

export interface FrpcInstall {
  version: string
  baseUrl: string
  folders: FrpcFolders
  manager: ServiceManager
  platform: string
  /** frpcConfigText of the same settings. */
  config: string
  ca: FrpsCa | undefined
  serverName: string
}

function pinCa(ca: FrpsCa, serverName: string, say: Say): WriteResult {
  const result = writeFileAtomic(ca.file, ca.text, { mode: 0o644, backup: true })
  if (result !== 'unchanged') say(`frps CA ${result}: ${ca.file} (frpc checks the VPS is ${serverName})`)
  return result
}

export async function installFrpc(o: FrpcInstall, say: Say): Promise<void> {
  const { folders, ca } = o
  const binary = await installFrpBinary('frpc', { ...o, installDir: folders.installDir }, say)
  fs.mkdirSync(folders.configDir, { recursive: true, mode: 0o755 })
  fs.mkdirSync(folders.logDir, { recursive: true, mode: 0o755 })
  await verifyFrpConfig({
    kind: 'frpc',
    bin: binary.bin,
    dir: folders.configDir,
    text: o.config,
    hint: `check FRP_VERSION (${FRP_MIN_VERSION} or later) and report this as a bug`,
  })
  const caResult = ca ? pinCa(ca, o.serverName, say) : 'unchanged'
  const configFile = path.join(folders.configDir, 'frpc.toml')
  const configResult = writeFrpConfig(configFile, o.config, 0o600, say)
  if (!ca) say('tip: pass --frps-ca FILE (printed by frps-setup) so frpc checks it talks to your VPS')

  const service = await applyService({
    ...frpcService(o.manager, o.platform, folders, { binPath: binary.bin, configFile }),
    restart: binary.installed || configResult !== 'unchanged' || caResult !== 'unchanged',
    say,
  })
  if (service === 'unchanged') say('frpc service is running and up to date')
  say(`frpc logs: ${path.join(folders.logDir, 'frpc.log')}`)
}
