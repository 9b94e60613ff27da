// What frpc-setup installs at home, checked before anything is: the VPS address and the name on
// its certificate, the pinned frps CA, frpc.toml from .env, and which service starts frpc at boot
// (a LaunchDaemon on macOS, a systemd unit elsewhere).
import fs from 'node:fs'
import path from 'node:path'
import { UsageError } from '../core/cli.mts'
import { isHostname } from '../core/env.mts'
import type { ApplyServiceOptions, ServiceManager } from '../core/service.mts'
import { frpcToml } from './frp.mts'
import { FRPC_LAUNCHD_LABEL, frpcLaunchDaemon, frpcUnit } from './frp-service.mts'

export interface FrpcFolders {
  installDir: string
  configDir: string
  logDir: string
  systemdDir: string
  launchdDir: string
}

/** The copy of frps' CA frpc checks the VPS against; once there, later runs keep it. */
export function pinnedCaFile(configDir: string): string {
  return path.join(configDir, 'frps-ca.crt')
}

function readCa(file: string): string {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    throw new UsageError(
      `--frps-ca ${file} cannot be read: copy ca.crt from the VPS (frps-setup printed its path)`,
    )
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(text))
    throw new UsageError(`--frps-ca ${file} is not a PEM certificate: use the ca.crt that frps-setup printed`)
  return text
}

export interface FrpsCa {
  text: string
  /** Where frpc reads it (the pinned copy). */
  file: string
  /** Taken from the pinned copy, no --frps-ca given. */
  kept: boolean
}

/** The CA given with --frps-ca, else the one pinned before; undefined: frpc checks no identity. */
export function frpsCa(given: string | undefined, configDir: string): FrpsCa | undefined {
  const file = pinnedCaFile(configDir)
  const source = given ?? (fs.existsSync(file) ? file : undefined)
  return source ? { text: readCa(source), file, kept: given === undefined } : undefined
}

export interface FrpsEndpoint {
  serverAddr: string
  /** Name on frps' certificate (DOMAIN); only used with a CA. */
  serverName: string
}

/** The VPS address and certificate name: the flags, else FRP_SERVER_ADDR and DOMAIN from `envFile`. */
export function frpsEndpoint(
  given: { serverAddr: string | undefined; serverName: string | undefined },
  env: Record<string, string>,
  envFile: string,
  pinning: boolean,
): FrpsEndpoint {
  const serverAddr = given.serverAddr ?? env.FRP_SERVER_ADDR ?? ''
  if (!serverAddr)
    throw new UsageError(
      `FRP_SERVER_ADDR is empty: set it in ${envFile} to the VPS address, or pass --server-addr`,
    )
  if (!/^[\w.:-]+$/.test(serverAddr))
    throw new UsageError(`--server-addr ${serverAddr} is not an IP address or hostname`)
  const serverName = given.serverName ?? env.DOMAIN ?? ''
  if (pinning && (!isHostname(serverName) || serverName === 'localhost'))
    throw new UsageError(
      `--frps-ca needs the name on frps' certificate: set DOMAIN in ${envFile} (the domain given to frps-setup) or pass --server-name`,
    )
  return { serverAddr, serverName }
}

/** frpc.toml from .env: PostHog's proxy port into the VPS loopback port, the VPS pinned when a CA is. */
export function frpcConfigText(
  env: Record<string, string>,
  endpoint: FrpsEndpoint,
  logDir: string,
  ca: FrpsCa | undefined,
): string {
  return frpcToml({
    serverAddr: endpoint.serverAddr,
    serverPort: Number(env.FRP_SERVER_PORT),
    token: env.FRP_TOKEN!,
    localPort: Number(env.POSTHOG_PROXY_HTTP_PORT),
    remotePort: Number(env.FRP_REMOTE_PORT),
    logFile: path.join(logDir, 'frpc.log'),
    ...(ca ? { trustedCaFile: ca.file, serverName: endpoint.serverName } : {}),
  })
}

/** The service that starts frpc at boot: a LaunchDaemon on macOS (also printed there with `none`). */
export function frpcService(
  manager: ServiceManager,
  platform: string,
  folders: Pick<FrpcFolders, 'systemdDir' | 'launchdDir' | 'logDir'>,
  files: { binPath: string; configFile: string },
): Pick<ApplyServiceOptions, 'manager' | 'kind' | 'name' | 'file' | 'content'> {
  const launchd = manager === 'launchd' || (manager === 'none' && platform === 'darwin')
  const unit = { ...files, logDir: folders.logDir }
  if (launchd)
    return {
      manager,
      kind: 'launchd',
      name: FRPC_LAUNCHD_LABEL,
      file: path.join(folders.launchdDir, `${FRPC_LAUNCHD_LABEL}.plist`),
      content: frpcLaunchDaemon(unit),
    }
  return {
    manager,
    kind: 'systemd',
    name: 'frpc.service',
    file: path.join(folders.systemdDir, 'frpc.service'),
    content: frpcUnit(unit),
  }
}
