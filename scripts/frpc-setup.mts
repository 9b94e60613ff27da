// Home side of the tunnel: installs frpc at the pinned FRP_VERSION (checksum-verified), writes
// frpc.toml from .env (FRP_TOKEN generated when empty, never printed), checks it with
// `frpc verify -c`, and installs a service that starts at boot (LaunchDaemon / systemd unit).
import path from 'node:path'
import { defineScript, type FlagSpecs, type Flags, runScript, say } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, envFilePath, loadConfig } from '../lib/core/env.mts'
import { detectServiceManager } from '../lib/core/service.mts'
import { frpFolderFlags } from '../lib/tunnel/frp-flags.mts'
import { ensureHomeEnv, installFrpc } from '../lib/tunnel/frpc-install.mts'
import { type FrpcFolders, frpcConfigText, frpsCa, frpsEndpoint } from '../lib/tunnel/frpc-settings.mts'

const mac = process.platform === 'darwin'

const spec = defineScript({
  usage: 'npx tsx scripts/frpc-setup.mts [--frps-ca FILE] [options]',
  summary:
    'Installs frpc (FRP_VERSION, SHA-256 checked), writes frpc.toml from .env (FRP_SERVER_ADDR, FRP_TOKEN,\n' +
    'POSTHOG_PROXY_HTTP_PORT, FRP_REMOTE_PORT) and a service that starts frpc at boot. FRP_TOKEN is generated\n' +
    'into .env when empty and never printed. Safe to re-run: what is already right is left alone.',
  flags: {
    'env-file': ENV_FILE_FLAG,
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
    ...frpFolderFlags('frpc', {
      configDir: mac ? '/usr/local/etc/frp' : '/etc/frp',
      configHelp: 'where frpc.toml goes',
      logDir: mac ? '/usr/local/var/log/frp' : '/var/log/frp',
    }),
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

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const manager = detectServiceManager(flags['service-manager'])
  const folders: FrpcFolders = {
    installDir: path.resolve(flags['install-dir']),
    configDir: path.resolve(flags['config-dir']),
    logDir: path.resolve(flags['log-dir']),
    systemdDir: path.resolve(flags['systemd-dir']),
    launchdDir: path.resolve(flags['launchd-dir']),
  }
  // Once pinned, the VPS identity stays pinned on later runs without --frps-ca (delete the copy to unpin).
  const ca = frpsCa(flags['frps-ca'], folders.configDir)
  // A first run before `up` also fills in PostHog's secrets, exactly as `up` would.
  const ensured = ensureHomeEnv(envFilePath({ envFile: flags['env-file'] }))
  const { raw, envFile } = loadConfig({ envFile: flags['env-file'] })
  const given = { serverAddr: flags['server-addr'], serverName: flags['server-name'] }
  const endpoint = frpsEndpoint(given, raw, envFile, ca !== undefined)
  if (ca?.kept) say(`keeping the pinned frps CA (${ca.file})`)
  // built before anything is installed: a value frp cannot read is bad input (exit 2)
  const config = frpcConfigText(raw, endpoint, folders.logDir, ca)
  if (ensured.generated.length) say(`generated ${ensured.generated.join(', ')} in ${envFile} (not shown)`)
  if (ensured.generated.includes('FRP_TOKEN'))
    say('frps on the VPS needs the same FRP_TOKEN: see docs/public.md, "The tunnel (frp)"')

  await installFrpc(
    {
      version: raw.FRP_VERSION!,
      baseUrl: raw.FRP_RELEASE_BASE_URL!,
      folders,
      manager,
      platform: process.platform,
      config,
      ca,
      serverName: endpoint.serverName,
    },
    say,
  )
  return 0
}

await runScript('frpc-setup', spec, main)
