// Installs the schedule for the health check: a marked crontab entry on Linux, a launchd agent
// on macOS; every 5 minutes by default. The scheduled command is a bundle started with the
// absolute node path (no npx, no tsx: cheap start). Re-running changes nothing.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  defineScript,
  type Flags,
  RuntimeFailure,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { run } from '../lib/core/exec.mts'
import { writeFileAtomic } from '../lib/core/fs.mts'
import {
  applyCronEntry,
  buildLaunchAgentPlist,
  cronCommand,
  cronSchedule,
  describeCronChange,
  parseEvery,
  scheduledPath,
  stableNodePath,
} from '../lib/monitor/schedule.mts'
import { findDocker } from '../lib/stack/preflight.mts'

export const AGENT_LABEL = 'com.posthog-homelab.health'
const CRON_ID = 'health'
const BUNDLE = 'dist/health.mjs'

const spec = defineScript({
  usage: 'npx tsx scripts/schedule.mts [--every 5m] [--uninstall]',
  summary:
    'Runs the health check on a schedule: a crontab entry on Linux, a launchd agent on macOS.\n' +
    `Bundles scripts/health.mts into ${BUNDLE} and schedules \`cd <repo> && <node> ${BUNDLE}\`, output appended to a log.`,
  flags: {
    every: {
      type: 'string',
      env: 'HEALTH_EVERY',
      default: '5m',
      help: 'interval: 1m..30m dividing an hour, or 1h..24h',
    },
    uninstall: { type: 'boolean', help: 'remove the schedule (the log and the bundle stay)' },
    platform: { type: 'string', help: 'darwin (launchd) or linux (cron); default: this machine' },
    'launch-agents-dir': { type: 'string', path: true, help: 'default ~/Library/LaunchAgents (macOS)' },
    'log-file': { type: 'string', path: true, help: 'default logs/health.log in the repository' },
    'log-max-mb': { type: 'string', default: '5', help: 'the log is rotated to LOG.1 past this size' },
    heal: { type: 'boolean', help: 'schedule health with --heal (restart exited or unhealthy services)' },
    'env-file': ENV_FILE_FLAG,
  },
})
type ScriptFlags = Flags<typeof spec.flags>

interface Plan {
  root: string
  node: string
  log: string
  minutes: number
  healthArgs: string[]
  /** PATH (and DOCKER_BIN when set) for the run: cron and launchd do not pass the shell's PATH. */
  env: Record<string, string>
}

function plan(flags: ScriptFlags): Plan {
  const root = process.cwd()
  const log = path.resolve(root, String(flags['log-file'] ?? 'logs/health.log'))
  const maxMb = String(flags['log-max-mb'])
  if (!(Number(maxMb) > 0)) throw new UsageError(`--log-max-mb=${maxMb} must be a number above 0`)
  const envFile = ['--env-file', path.resolve(flags['env-file'])]
  return {
    root,
    node: stableNodePath(),
    log,
    minutes: parseEvery(String(flags.every)),
    healthArgs: [
      BUNDLE,
      '--rotate-log',
      log,
      '--log-max-mb',
      maxMb,
      ...envFile,
      ...(flags.heal ? ['--heal'] : []),
    ],
    env: runEnv(),
  }
}

function runEnv(): Record<string, string> {
  const found = findDocker()
  if (!found) warn('docker is not on PATH here: the scheduled check reports UNKNOWN until it is')
  const docker = found && path.resolve(found)
  return { PATH: scheduledPath(docker), ...(process.env.DOCKER_BIN && docker ? { DOCKER_BIN: docker } : {}) }
}

/** Bundles the health check; the file is only replaced when its bytes change. */
async function bundleHealth(root: string): Promise<string> {
  const { bundleEntry } = await import('../lib/core/bundle.mts')
  const tmp = path.join(os.tmpdir(), `health-${process.pid}-${Date.now()}.mjs`)
  try {
    await bundleEntry(path.join(root, 'scripts/health.mts'), tmp)
    return writeFileAtomic(path.join(root, BUNDLE), fs.readFileSync(tmp))
  } catch (e) {
    throw new RuntimeFailure(
      `bundling scripts/health.mts failed: ${(e as Error).message.split('\n')[0]}`,
      'run npm ci first',
    )
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

async function installCron(p: Plan): Promise<void> {
  const entry = `${cronSchedule(p.minutes)} ${cronCommand(p.root, [p.node, ...p.healthArgs], p.log, p.env)}`
  say(describeCronChange(CRON_ID, await applyCronEntry(CRON_ID, entry)))
  say(`  ${entry}`)
}

function launchDomain(): string {
  return `gui/${process.getuid?.() ?? 501}`
}

async function launchctl(args: string[]) {
  return run('launchctl', args, { nothrow: true, timeout: '30s' })
}

async function installLaunchd(p: Plan, dir: string): Promise<void> {
  const plistPath = path.join(dir, `${AGENT_LABEL}.plist`)
  const plist = buildLaunchAgentPlist({
    label: AGENT_LABEL,
    programArguments: [p.node, ...p.healthArgs],
    workingDirectory: p.root,
    startIntervalSeconds: p.minutes * 60,
    stdoutPath: p.log,
    stderrPath: p.log,
    environment: p.env,
  })
  const written = writeFileAtomic(plistPath, plist, { backup: true })
  const loaded = (await launchctl(['print', `${launchDomain()}/${AGENT_LABEL}`])).ok
  if (written !== 'unchanged' || !loaded) {
    if (loaded) await launchctl(['bootout', `${launchDomain()}/${AGENT_LABEL}`])
    const res = await launchctl(['bootstrap', launchDomain(), plistPath])
    if (!res.ok)
      throw new RuntimeFailure(
        `launchctl bootstrap ${launchDomain()} ${plistPath} failed: ${res.stderr.trim().split('\n').at(-1)}`,
        'run it by hand to see why, or check the plist with plutil -lint',
      )
  }
  say(
    `launchd agent ${AGENT_LABEL}: ${written === 'unchanged' && loaded ? 'unchanged' : written} (${plistPath})`,
  )
}

async function uninstallLaunchd(dir: string): Promise<void> {
  const plistPath = path.join(dir, `${AGENT_LABEL}.plist`)
  const loaded = (await launchctl(['print', `${launchDomain()}/${AGENT_LABEL}`])).ok
  if (loaded) await launchctl(['bootout', `${launchDomain()}/${AGENT_LABEL}`])
  const existed = fs.existsSync(plistPath)
  fs.rmSync(plistPath, { force: true })
  say(`launchd agent ${AGENT_LABEL}: ${existed || loaded ? 'removed' : 'absent'}`)
}

async function main(flags: ScriptFlags): Promise<number> {
  const platform = String(flags.platform ?? process.platform)
  if (platform !== 'darwin' && platform !== 'linux')
    throw new UsageError(`--platform=${platform} must be darwin or linux`)
  const agentsDir = path.resolve(
    String(flags['launch-agents-dir'] ?? path.join(os.homedir(), 'Library', 'LaunchAgents')),
  )
  if (flags.uninstall) {
    if (platform === 'darwin') await uninstallLaunchd(agentsDir)
    else say(describeCronChange(CRON_ID, await applyCronEntry(CRON_ID, undefined)))
    return 0
  }
  const p = plan(flags)
  loadConfig({ envFile: flags['env-file'] }) // the check must be able to start
  fs.mkdirSync(path.dirname(p.log), { recursive: true })
  say(`bundle ${BUNDLE}: ${await bundleHealth(p.root)}`)
  if (platform === 'darwin') await installLaunchd(p, agentsDir)
  else await installCron(p)
  say(`health runs every ${p.minutes} min; output goes to ${p.log}`)
  return 0
}

await runScript('schedule', spec, main)
