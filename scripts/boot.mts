// Installs the job that starts PostHog after a reboot: a systemd unit on Linux (`up` once
// docker.service has started, as the checkout's owner), a LaunchAgent on macOS (at login: wait
// for Docker Desktop, then `up`). Re-running changes nothing; --uninstall removes it.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  defineScript,
  type Flags,
  parseDuration,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { lastLine, run } from '../lib/core/exec.mts'
import { writeFileAtomic } from '../lib/core/fs.mts'
import { formatElapsed } from '../lib/core/health.mts'
import { scheduledPath, stableNodePath } from '../lib/monitor/schedule.mts'
import {
  BOOT_LABEL,
  BOOT_UNIT,
  type BootJob,
  bootLaunchAgent,
  bootSystemdUnit,
  checkoutOwner,
  nodeCommand,
  waitForDocker,
} from '../lib/ops/boot.mts'
import { findDocker } from '../lib/stack/preflight.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/boot.mts [--uninstall]   (on Linux as root: sudo env "PATH=$PATH" npm run boot)',
  summary:
    'Starts PostHog by itself after a reboot or a power cut. Linux: a systemd unit that runs `up` (as the ' +
    `checkout's owner) once docker.service has started. macOS: a LaunchAgent that, at login, waits for Docker ` +
    'Desktop and then runs `up` (turn on automatic login and Docker Desktop\'s "Start when you sign in").',
  flags: {
    uninstall: { type: 'boolean', help: 'remove the job (a log stays)' },
    platform: { type: 'string', help: 'linux (systemd) or darwin (launchd); default: this machine' },
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
    'launch-agents-dir': { type: 'string', help: 'default ~/Library/LaunchAgents (macOS)' },
    'log-file': { type: 'string', help: 'output of the job, default logs/boot.log (macOS)' },
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

function platformOf(flags: BootFlags): 'linux' | 'darwin' {
  const platform = String(flags.platform ?? process.platform)
  if (platform !== 'darwin' && platform !== 'linux')
    throw new UsageError(`--platform=${platform} must be darwin or linux`)
  return platform
}

/** What the job runs, and with which environment; refuses before writing anything. */
function jobFor(flags: BootFlags): BootJob {
  const root = process.cwd()
  const loader = path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')
  if (!fs.existsSync(loader))
    throw new RuntimeFailure(`${loader} is missing`, 'run npm ci in the checkout first')
  const envFile = path.resolve(flags['env-file'])
  loadConfig({ envFile }) // the job must be able to start: a broken .env is bad input now, not at boot
  const found = findDocker()
  if (!found) warn('docker is not on PATH here: the job will not find it at boot until it is')
  const dockerPath = found && path.resolve(found)
  const environment: Record<string, string> = { PATH: scheduledPath(dockerPath) }
  if (process.env.DOCKER_BIN && dockerPath) environment.DOCKER_BIN = dockerPath
  return { root, node: stableNodePath(), loader, envFile, environment }
}

async function systemctl(args: string[]) {
  return run('systemctl', args, { nothrow: true, timeout: '60s' })
}

async function systemctlOrFail(args: string[]): Promise<void> {
  const r = await systemctl(args)
  if (!r.ok)
    throw new RuntimeFailure(
      `'systemctl ${args.join(' ')}' failed: ${lastLine(r) || `exit ${r.exitCode}`}`,
      `check the unit with: systemd-analyze verify ${BOOT_UNIT}`,
    )
}

function assertWritable(dir: string, what: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true })
    fs.accessSync(dir, fs.constants.W_OK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new RuntimeFailure(
      `cannot write ${what} into ${dir} (${code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code})`,
      code === 'EACCES' || code === 'EPERM'
        ? 'run it as root, keeping your PATH: sudo env "PATH=$PATH" npm run boot'
        : 'give a folder that exists and can hold it',
    )
  }
}

async function installSystemd(flags: BootFlags): Promise<void> {
  const unitDir = path.resolve(String(flags['unit-dir']))
  const dockerUnit = String(flags['docker-unit'])
  if (!/^[\w@.:-]+\.service$/.test(dockerUnit))
    throw new UsageError(`--docker-unit=${dockerUnit} must be a unit name such as docker.service`)
  const startTimeoutSec = parseDuration(String(flags['start-timeout']), '--start-timeout') / 1000
  const job = jobFor(flags)
  const user = checkoutOwner(job.root)
  assertWritable(unitDir, BOOT_UNIT)
  const file = path.join(unitDir, BOOT_UNIT)
  const unit = bootSystemdUnit(job, { user, dockerUnit, startTimeoutSec })
  const written = writeFileAtomic(file, unit, { mode: 0o644, backup: true })
  if (written !== 'unchanged') await systemctlOrFail(['daemon-reload'])
  const enabled = (await systemctl(['is-enabled', '--quiet', BOOT_UNIT])).ok
  if (!enabled) await systemctlOrFail(['enable', BOOT_UNIT])
  say(`systemd unit ${BOOT_UNIT}: ${written === 'unchanged' && enabled ? 'unchanged' : written} (${file})`)
  say(
    `after each boot, once ${dockerUnit} has started, it runs as ${user}: ${nodeCommand(job, 'scripts/up.mts').join(' ')}`,
  )
  say(`see the last run with: systemctl status ${BOOT_UNIT}; journalctl -u ${BOOT_UNIT}`)
}

async function uninstallSystemd(flags: BootFlags): Promise<void> {
  const file = path.join(path.resolve(String(flags['unit-dir'])), BOOT_UNIT)
  const existed = fs.existsSync(file)
  const enabled = (await systemctl(['is-enabled', '--quiet', BOOT_UNIT])).ok
  if (existed) assertWritable(path.dirname(file), BOOT_UNIT)
  if (enabled) await systemctlOrFail(['disable', BOOT_UNIT])
  if (existed) {
    fs.rmSync(file, { force: true })
    await systemctlOrFail(['daemon-reload'])
  }
  say(`systemd unit ${BOOT_UNIT}: ${existed || enabled ? 'removed' : 'absent'}`)
}

function agentsDir(flags: BootFlags): string {
  return path.resolve(
    String(flags['launch-agents-dir'] ?? path.join(os.homedir(), 'Library', 'LaunchAgents')),
  )
}

/**
 * Writes the LaunchAgent; launchd loads every agent in ~/Library/LaunchAgents at login, which is
 * when it should run. It is not loaded now: loading a RunAtLoad agent would run `up` at once.
 */
function installLaunchd(flags: BootFlags): void {
  const dockerWait = String(flags['docker-wait'])
  parseDuration(dockerWait, '--docker-wait')
  const job = jobFor(flags)
  const logFile = path.resolve(job.root, String(flags['log-file'] ?? 'logs/boot.log'))
  const dir = agentsDir(flags)
  assertWritable(dir, `${BOOT_LABEL}.plist`)
  fs.mkdirSync(path.dirname(logFile), { recursive: true })
  const file = path.join(dir, `${BOOT_LABEL}.plist`)
  const written = writeFileAtomic(file, bootLaunchAgent(job, { logFile, dockerWait }), { backup: true })
  say(`launchd agent ${BOOT_LABEL}: ${written} (${file})`)
  say(`at each login it waits for Docker Desktop (up to ${dockerWait}), then runs up; output: ${logFile}`)
  say(
    'for a power cut to bring PostHog back, turn on automatic login (System Settings > Users & Groups) and ' +
      'Docker Desktop\'s "Start Docker Desktop when you sign in"',
  )
}

async function uninstallLaunchd(flags: BootFlags): Promise<void> {
  const file = path.join(agentsDir(flags), `${BOOT_LABEL}.plist`)
  const target = `gui/${process.getuid?.() ?? 501}/${BOOT_LABEL}`
  const loaded = (await run('launchctl', ['print', target], { nothrow: true, timeout: '30s' })).ok
  if (loaded) await run('launchctl', ['bootout', target], { nothrow: true, timeout: '30s' })
  const existed = fs.existsSync(file)
  fs.rmSync(file, { force: true })
  say(`launchd agent ${BOOT_LABEL}: ${existed || loaded ? 'removed' : 'absent'}`)
}

/** What the LaunchAgent runs at login: wait for Docker Desktop, then `up`, with up's exit code. */
async function runAtLogin(flags: BootFlags): Promise<number> {
  const waitMs = parseDuration(String(flags['docker-wait']), '--docker-wait')
  const envFile = ['--env-file', path.resolve(flags['env-file'])]
  say(`${new Date().toISOString()} boot: waiting for Docker (up to ${formatElapsed(waitMs)})`)
  if (!(await waitForDocker(waitMs, say)))
    throw new RuntimeFailure(
      `Docker did not answer within ${formatElapsed(waitMs)}; PostHog was not started`,
      'set Docker Desktop to start when you sign in (Settings > General), or raise --docker-wait',
    )
  say(`${new Date().toISOString()} boot: Docker is up; running up`)
  const loader = path.join(process.cwd(), 'node_modules', 'tsx', 'dist', 'loader.mjs')
  const res = await run(process.execPath, ['--import', loader, 'scripts/up.mts', ...envFile], {
    inherit: true,
    nothrow: true,
    timeout: '3h',
  })
  say(`${new Date().toISOString()} boot: up finished (exit ${res.exitCode ?? res.signal})`)
  return res.exitCode ?? 1
}

await runScript('boot', spec, async (flags) => {
  const platform = platformOf(flags)
  if (flags.run) {
    if (flags.uninstall) throw new UsageError('--run and --uninstall do not go together')
    return runAtLogin(flags)
  }
  if (platform === 'linux') await (flags.uninstall ? uninstallSystemd(flags) : installSystemd(flags))
  else if (flags.uninstall) await uninstallLaunchd(flags)
  else installLaunchd(flags)
  return 0
})
