// What frps-setup installs, checked before anything is: the domain, the ports, the release, the
// folders, the service manager and the user; where each file goes; and frps.toml itself, built
// first so a value frp cannot read is bad input (exit 2) rather than a half-done install.
import path from 'node:path'
import { UsageError } from '../core/cli.mts'
import { frpVersionProblem } from '../core/env.mts'
import { detectServiceManager, type ServiceManager } from '../core/service.mts'
import { frpsToml } from './frp.mts'
import { parsePort, requireDomain } from './nginx-settings.mts'
import { identityPaths } from './tunnel-identity.mts'

export interface FrpsSettings {
  domain: string
  remotePort: number
  bindPort: number
  bindAddr: string
  version: string
  baseUrl: string
  installDir: string
  configDir: string
  logDir: string
  systemdDir: string
  manager: ServiceManager
  user: string
}

/** The settings as given on the command line (flags or their environment variables). */
export type GivenFrpsSettings = Record<Exclude<keyof FrpsSettings, 'domain'>, string> & {
  domain: string | undefined
}

function vpsServiceManager(choice: string): ServiceManager {
  const manager = detectServiceManager(choice, 'linux')
  if (manager === 'launchd')
    throw new UsageError('--service-manager launchd: the VPS side runs on Linux (systemd or none)')
  return manager
}

/** Checks every value; a UsageError names the first bad one. */
export function frpsSettings(given: GivenFrpsSettings): FrpsSettings {
  const domain = requireDomain(given.domain)
  const versionProblem = frpVersionProblem(given.version)
  if (versionProblem) throw new UsageError(`--frp-version ${given.version} ${versionProblem}`)
  if (!/^[\w.:-]+$/.test(given.bindAddr))
    throw new UsageError(`--bind-addr ${given.bindAddr} is not an IP address`)
  if (!/^https?:\/\/\S+$/.test(given.baseUrl))
    throw new UsageError(`--release-base-url ${given.baseUrl} is not an http(s) URL`)
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(given.user))
    throw new UsageError(`--user ${given.user} is not a valid user name`)
  return {
    ...given,
    domain,
    remotePort: parsePort(given.remotePort, '--remote-port'),
    bindPort: parsePort(given.bindPort, '--bind-port'),
    installDir: path.resolve(given.installDir),
    configDir: path.resolve(given.configDir),
    logDir: path.resolve(given.logDir),
    systemdDir: path.resolve(given.systemdDir),
    manager: vpsServiceManager(given.manager),
  }
}

/** Where frps-setup puts each file. */
export function frpsFiles(s: Pick<FrpsSettings, 'configDir' | 'logDir' | 'systemdDir'>) {
  return {
    tokenFile: path.join(s.configDir, 'frps.token'),
    tlsDir: path.join(s.configDir, 'tls'),
    configFile: path.join(s.configDir, 'frps.toml'),
    logFile: path.join(s.logDir, 'frps.log'),
    unitFile: path.join(s.systemdDir, 'frps.service'),
  }
}

/** frps.toml for these settings: the token read from its file, TLS with the tunnel identity. */
export function frpsConfigText(s: FrpsSettings): string {
  const files = frpsFiles(s)
  const { certFile, keyFile } = identityPaths(files.tlsDir)
  return frpsToml({
    bindAddr: s.bindAddr,
    bindPort: s.bindPort,
    remotePort: s.remotePort,
    tokenFile: files.tokenFile,
    certFile,
    keyFile,
    logFile: files.logFile,
  })
}
