// Installs the job that starts PostHog after a reboot: a systemd unit on Linux (`up` once
// docker.service has started, as the checkout's owner), a LaunchAgent on macOS (at login: wait
// for Docker Desktop, then `up`). Re-running changes nothing; --uninstall removes it.
// The builders and installers are lib/ops/boot.mts.
import os from 'node:os'
import path from 'node:path'
import { defineScript, type Flags, runScript, say, UsageError, warn } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG } from '../lib/core/env.mts'
import {
  BOOT_UNIT,
  bootPlatform,
  installLaunchd,
  installSystemd,
  runAtLogin,
  uninstallLaunchd,
  uninstallSystemd,
} from '../lib/ops/boot.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/boot.mts [--uninstall]   (on Linux as root: sudo env "PATH=$PATH" npm run boot)',
  summary:
    'Starts PostHog by itself after a reboot or a power cut. Linux: a systemd unit that runs `up` (as the ' +
    `checkout's owner) once docker.service has started. macOS: a LaunchAgent that, at login, waits for Docker ` +
    'Desktop and then runs `up` (turn on automatic login and Docker Desktop\'s "Start when you sign in").',
  flags: {
    uninstall: { type: 'boolean', help: 'remove the job (a log stays)' },
    platform: {
      type: 'string',
      default: process.platform,
      help: 'linux (systemd) or darwin (launchd)',
    },
    'unit-dir': {
      type: 'string',
      default: '/etc/systemd/system',
      help: 'where the systemd unit is written (Linux)',
    },
    'docker-unit': {
      type: 'string',
      default: 'docker.service',
      help: "the unit that runs Docker's daemon (e.g. snap.docker.dockerd.service) (Linux)",
    },
    'start-timeout': {
      type: 'string',
      default: '90m',
      help: 'how long systemd lets `up` run (a first start pulls every image) (Linux)',
    },
    'launch-agents-dir': {
      type: 'string',
      default: path.join(os.homedir(), 'Library', 'LaunchAgents'),
      help: 'where the LaunchAgent is written (macOS)',
    },
    'log-file': { type: 'string', default: 'logs/boot.log', help: 'output of the job (macOS)' },
    'docker-wait': {
      type: 'string',
      default: '10m',
      help: 'how long the job waits for Docker Desktop after login (macOS)',
    },
    run: {
      type: 'boolean',
      help: 'what the LaunchAgent runs: wait for Docker, then run up (and exit with its code)',
    },
    'env-file': ENV_FILE_FLAG,
  },
  notes:
    `Linux: systemctl status ${BOOT_UNIT} and journalctl -u ${BOOT_UNIT} show the last boot's start. ` +
    'macOS: see logs/boot.log.\n' +
    'Exit codes: 0 installed, removed or unchanged (with --run: up succeeded), 1 failed, 2 bad input.',
})

type BootFlags = Flags<typeof spec.flags>

function systemd(flags: BootFlags): Promise<void> {
  const unitDir = flags['unit-dir']
  if (flags.uninstall) return uninstallSystemd({ unitDir, log: say })
  return installSystemd({
    envFile: flags['env-file'],
    unitDir,
    dockerUnit: flags['docker-unit'],
    startTimeout: flags['start-timeout'],
    log: say,
    warn,
  })
}

async function launchd(flags: BootFlags): Promise<void> {
  const agentsDir = flags['launch-agents-dir']
  if (flags.uninstall) return uninstallLaunchd({ agentsDir, log: say })
  installLaunchd({
    envFile: flags['env-file'],
    agentsDir,
    logFile: flags['log-file'],
    dockerWait: flags['docker-wait'],
    log: say,
    warn,
  })
}

await runScript('boot', spec, async (flags) => {
  const platform = bootPlatform(flags.platform)
  if (flags.run) {
    if (flags.uninstall) throw new UsageError('--run and --uninstall do not go together')
    return runAtLogin({ dockerWait: flags['docker-wait'], envFile: flags['env-file'], log: say })
  }
  await (platform === 'linux' ? systemd(flags) : launchd(flags))
  return 0
})
