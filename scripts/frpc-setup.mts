// Home side of the tunnel: installs frpc at the pinned FRP_VERSION (checksum-verified), writes
// frpc.toml from .env (FRP_TOKEN generated when empty, never printed), checks it with
// `frpc verify -c`, and installs a service that starts at boot (LaunchDaemon / systemd unit).
import fs from 'node:fs'
import path from 'node:path'
import { defineScript, type FlagSpecs, type Flags, runScript, say, UsageError } from '../lib/core/cli.mts'
import { ensureEnvFile, envFilePath, FRP_MIN_VERSION, isHostname, loadConfig } from '../lib/core/env.mts'
import { writeFileAtomic } from '../lib/core/fs.mts'
import { applyService, detectServiceManager } from '../lib/core/service.mts'
import { frpcToml } from '../lib/tunnel/frp.mts'
import {
  FRPC_LAUNCHD_LABEL,
  frpcLaunchDaemon,
  frpcUnit,
  verifyFrpConfig,
} from '../lib/tunnel/frp-service.mts'
import { installFrp } from '../lib/tunnel/release.mts'

const mac = process.platform === 'darwin'

const spec = defineScript({
  usage: 'npx tsx scripts/frpc-setup.mts [--frps-ca FILE] [options]',
  summary:
    'Installs frpc (FRP_VERSION, SHA-256 checked), writes frpc.toml from .env (FRP_SERVER_ADDR, FRP_TOKEN,\n' +
    'POSTHOG_PROXY_HTTP_PORT, FRP_REMOTE_PORT) and a service that starts frpc at boot. FRP_TOKEN is generated\n' +
    'into .env when empty and never printed. Safe to re-run: what is already right is left alone.',
  flags: {
    'server-addr': { type: 'string', help: 'VPS address (overrides FRP_SERVER_ADDR in .env)' },
    'frps-ca': {
      type: 'string',
      path: true,
      env: 'FRPS_CA_FILE',
      help: 'CA file printed by frps-setup: frpc then checks it talks to your VPS',
    },
    'server-name': {
      type: 'string',
      env: 'FRPS_SERVER_NAME',
      help: "name on frps' certificate (default: DOMAIN from .env)",
    },
    'install-dir': {
      type: 'string',
      path: true,
      env: 'FRP_INSTALL_DIR',
      default: '/usr/local/bin',
      help: 'where frpc goes',
    },
    'config-dir': {
      type: 'string',
      path: true,
      env: 'FRP_CONFIG_DIR',
      default: mac ? '/usr/local/etc/frp' : '/etc/frp',
      help: 'where frpc.toml goes',
    },
    'log-dir': {
      type: 'string',
      path: true,
      env: 'FRP_LOG_DIR',
      default: mac ? '/usr/local/var/log/frp' : '/var/log/frp',
      help: "frpc's log directory",
    },
    'systemd-dir': {
      type: 'string',
      path: true,
      env: 'SYSTEMD_UNIT_DIR',
      default: '/etc/systemd/system',
      help: 'where frpc.service goes (Linux)',
    },
    'launchd-dir': {
      type: 'string',
      path: true,
      env: 'LAUNCHD_DAEMON_DIR',
      default: '/Library/LaunchDaemons',
      help: 'where the LaunchDaemon plist goes (macOS)',
    },
    'service-manager': {
      type: 'string',
      env: 'FRP_SERVICE_MANAGER',
      default: 'auto',
      help: 'auto, systemd, launchd, or none (only print the commands)',
    },
  } satisfies FlagSpecs,
  notes:
    'Needs root for the default paths (sudo -E npx tsx scripts/frpc-setup.mts). Run frps-setup on the VPS with\n' +
    'the same FRP_TOKEN; pass the CA file it prints with --frps-ca to pin the VPS identity (later runs keep\n' +
    'it; delete <config-dir>/frps-ca.crt to unpin).\n' +
    'Exit codes: 0 ok, 1 download/verify/service failed, 2 bad input.',
})

type CliFlags = Flags<typeof spec.flags>

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

/** Who owns `.env` (or, before it exists, its directory): under sudo it must stay the user's file. */
function ownerOf(envFile: string): { uid: number; gid: number } {
  const st = fs.statSync(fs.existsSync(envFile) ? envFile : path.dirname(envFile))
  return { uid: st.uid, gid: st.gid }
}

function keepOwner(envFile: string, owner: { uid: number; gid: number }): void {
  const st = fs.statSync(envFile)
  if (process.getuid?.() === 0 && (st.uid !== owner.uid || st.gid !== owner.gid))
    fs.chownSync(envFile, owner.uid, owner.gid)
}

async function main(flags: CliFlags): Promise<number> {
  const manager = detectServiceManager(flags['service-manager'] as string)
  // Once pinned, the VPS identity stays pinned on later runs without --frps-ca (delete the copy to unpin).
  const pinnedCa = path.join(path.resolve(flags['config-dir'] as string), 'frps-ca.crt')
  const caSource = flags['frps-ca'] ?? (fs.existsSync(pinnedCa) ? pinnedCa : undefined)
  const ca = caSource ? readCa(caSource) : undefined
  // A first run before `up` also fills in PostHog's secrets, exactly as `up` would.
  const envOwner = ownerOf(envFilePath())
  const ensured = ensureEnvFile({ secretKeys: ['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS', 'FRP_TOKEN'] })
  keepOwner(envFilePath(), envOwner)
  const cfg = loadConfig()
  const raw = cfg.raw
  const serverAddr = flags['server-addr'] ?? raw.FRP_SERVER_ADDR ?? ''
  if (!serverAddr)
    throw new UsageError(
      `FRP_SERVER_ADDR is empty: set it in ${cfg.envFile} to the VPS address, or pass --server-addr`,
    )
  if (!/^[\w.:-]+$/.test(serverAddr))
    throw new UsageError(`--server-addr ${serverAddr} is not an IP address or hostname`)
  const serverName = flags['server-name'] ?? raw.DOMAIN ?? ''
  if (caSource && !flags['frps-ca']) say(`keeping the pinned frps CA (${pinnedCa})`)
  if (ca && (!isHostname(serverName) || serverName === 'localhost'))
    throw new UsageError(
      `--frps-ca needs the name on frps' certificate: set DOMAIN in ${cfg.envFile} (the domain given to frps-setup) or pass --server-name`,
    )

  const installDir = path.resolve(flags['install-dir'] as string)
  const configDir = path.resolve(flags['config-dir'] as string)
  const logDir = path.resolve(flags['log-dir'] as string)
  const configFile = path.join(configDir, 'frpc.toml')
  const caFile = pinnedCa
  // built before anything is installed: a value frp cannot read is bad input (exit 2)
  const text = frpcToml({
    serverAddr,
    serverPort: Number(raw.FRP_SERVER_PORT),
    token: raw.FRP_TOKEN!,
    localPort: Number(raw.POSTHOG_PROXY_HTTP_PORT),
    remotePort: Number(raw.FRP_REMOTE_PORT),
    logFile: path.join(logDir, 'frpc.log'),
    ...(ca ? { trustedCaFile: caFile, serverName } : {}),
  })
  if (ensured.generated.length) say(`generated ${ensured.generated.join(', ')} in ${cfg.envFile} (not shown)`)
  if (ensured.generated.includes('FRP_TOKEN'))
    say('frps on the VPS needs the same FRP_TOKEN: see the README, "The tunnel (frp)"')

  const bin = await installFrp({
    version: raw.FRP_VERSION!,
    baseUrl: raw.FRP_RELEASE_BASE_URL!,
    installDir,
    binaries: ['frpc'],
    say,
  })
  const frpcBin = bin.paths.frpc!
  say(
    bin.result === 'installed'
      ? `installed frpc ${raw.FRP_VERSION} at ${frpcBin}`
      : `frpc ${raw.FRP_VERSION} already installed`,
  )

  fs.mkdirSync(configDir, { recursive: true, mode: 0o755 })
  fs.mkdirSync(logDir, { recursive: true, mode: 0o755 })
  await verifyFrpConfig({
    kind: 'frpc',
    bin: frpcBin,
    dir: configDir,
    text,
    hint: `check FRP_VERSION (${FRP_MIN_VERSION} or later) and report this as a bug`,
  })
  const caResult = ca ? writeFileAtomic(caFile, ca, { mode: 0o644, backup: true }) : 'unchanged'
  if (caResult !== 'unchanged') say(`frps CA ${caResult}: ${caFile} (frpc checks the VPS is ${serverName})`)
  const configResult = writeFileAtomic(configFile, text, { mode: 0o600, backup: true })
  say(configResult === 'unchanged' ? `${configFile} is up to date` : `${configFile} ${configResult}`)
  if (!ca) say('tip: pass --frps-ca FILE (printed by frps-setup) so frpc checks it talks to your VPS')

  const restart = bin.result === 'installed' || configResult !== 'unchanged' || caResult !== 'unchanged'
  const launchd = manager === 'launchd' || (manager === 'none' && mac)
  const service = await applyService({
    manager,
    kind: launchd ? 'launchd' : 'systemd',
    name: launchd ? FRPC_LAUNCHD_LABEL : 'frpc.service',
    file: launchd
      ? path.join(path.resolve(flags['launchd-dir'] as string), `${FRPC_LAUNCHD_LABEL}.plist`)
      : path.join(path.resolve(flags['systemd-dir'] as string), 'frpc.service'),
    content: launchd
      ? frpcLaunchDaemon({ binPath: frpcBin, configFile, logDir })
      : frpcUnit({ binPath: frpcBin, configFile, logDir }),
    restart,
    say,
  })
  if (service === 'unchanged') say('frpc service is running and up to date')
  say(`frpc logs: ${path.join(logDir, 'frpc.log')}`)
  return 0
}

await runScript('frpc-setup', spec, main)
