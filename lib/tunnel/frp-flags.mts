// The flags frpc-setup (home) and frps-setup (VPS) share: where the binary, its config, its log and
// its systemd unit go. Same environment variables on both sides; the defaults of the config and
// log folders differ (macOS keeps them under /usr/local).
import type { FlagSpecs } from '../core/cli.mts'

export function frpFolderFlags(
  kind: 'frpc' | 'frps',
  folders: { configDir: string; configHelp: string; logDir: string },
) {
  return {
    'install-dir': {
      type: 'string',
      path: true,
      env: 'FRP_INSTALL_DIR',
      default: '/usr/local/bin',
      help: `where ${kind} goes`,
    },
    'config-dir': {
      type: 'string',
      path: true,
      env: 'FRP_CONFIG_DIR',
      default: folders.configDir,
      help: folders.configHelp,
    },
    'log-dir': {
      type: 'string',
      path: true,
      env: 'FRP_LOG_DIR',
      default: folders.logDir,
      help: `${kind}'s log directory`,
    },
    'systemd-dir': {
      type: 'string',
      path: true,
      env: 'SYSTEMD_UNIT_DIR',
      default: '/etc/systemd/system',
      help: `where ${kind}.service goes (Linux)`,
    },
  } as const satisfies FlagSpecs
}
