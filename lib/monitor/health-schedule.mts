// The schedule of the home health check (scripts/schedule.mts): the bundle it runs, the command
// line with its PATH, and the crontab entry (Linux) or launchd agent (macOS) that runs it.
// Not bundled itself (it runs esbuild): the crontab and plist pieces are lib/monitor/schedule.mts.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { RuntimeFailure, warn } from '../core/cli.mts'
import { run } from '../core/exec.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { findDocker } from '../stack/preflight.mts'
import { logMaxBytes } from './log.mts'
import {
  applyCronEntry,
  buildLaunchAgentPlist,
  cronCommand,
  cronSchedule,
  describeCronChange,
  parseEvery,
  scheduledPath,
  stableNodePath,
} from './schedule.mts'

export const AGENT_LABEL = 'com.posthog-homelab.health'
export const HEALTH_CRON_ID = 'health'
export const HEALTH_BUNDLE = 'dist/health.mjs'

export interface HealthScheduleOptions {
  /** The repository: the scheduled command runs there. */
  root: string
  logFile: string
  logMaxMb: string
  envFile: string
  every: string
  heal: boolean
}

export interface HealthSchedule {
  root: string
  node: string
  log: string
  minutes: number
  /** The bundle and its arguments, after the node binary. */
  healthArgs: string[]
  /** PATH (and DOCKER_BIN when set) for the run: cron and launchd do not pass the shell's PATH. */
  env: Record<string, string>
}

/** What to schedule; bad input (--log-max-mb, --every) throws a UsageError. */
export function healthSchedule(
  o: HealthScheduleOptions,
  machine: { node?: string; env?: () => Record<string, string> } = {},
): HealthSchedule {
  const log = path.resolve(o.root, o.logFile)
  logMaxBytes(o.logMaxMb)
  return {
    root: o.root,
    node: machine.node ?? stableNodePath(),
    log,
    minutes: parseEvery(o.every),
    healthArgs: [
      HEALTH_BUNDLE,
      '--rotate-log',
      log,
      '--log-max-mb',
      o.logMaxMb,
      '--env-file',
      path.resolve(o.envFile),
      ...(o.heal ? ['--heal'] : []),
    ],
    env: (machine.env ?? scheduledEnv)(),
  }
}

/** PATH with the directory docker is found in (and DOCKER_BIN when it is set) for the scheduled run. */
export function scheduledEnv(): Record<string, string> {
  const found = findDocker()
  if (!found) warn('docker is not on PATH here: the scheduled check reports UNKNOWN until it is')
  const docker = found && path.resolve(found)
  return { PATH: scheduledPath(docker), ...(process.env.DOCKER_BIN && docker ? { DOCKER_BIN: docker } : {}) }
}

/** Bundles the health check; the file is only replaced when its bytes change. */
export async function bundleHealth(root: string): Promise<string> {
  const { bundleEntry } = await import('../core/bundle.mts')
  const tmp = path.join(os.tmpdir(), `health-${process.pid}-${Date.now()}.mjs`)
  try {
    await bundleEntry(path.join(root, 'scripts/health.mts'), tmp)
    return writeFileAtomic(path.join(root, HEALTH_BUNDLE), fs.readFileSync(tmp))
  } catch (e) {
    throw new RuntimeFailure(
      `bundling scripts/health.mts failed: ${(e as Error).message.split('\n')[0]}`,
      'run npm ci first',
    )
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** The crontab line of the schedule. */
export function healthCronEntry(p: HealthSchedule): string {
  return `${cronSchedule(p.minutes)} ${cronCommand(p.root, [p.node, ...p.healthArgs], p.log, p.env)}`
}

/** Sets the crontab entry; returns what to report. */
export async function installHealthCron(p: HealthSchedule): Promise<string[]> {
  const entry = healthCronEntry(p)
  return [describeCronChange(HEALTH_CRON_ID, await applyCronEntry(HEALTH_CRON_ID, entry)), `  ${entry}`]
}

export async function uninstallHealthCron(): Promise<string> {
  return describeCronChange(HEALTH_CRON_ID, await applyCronEntry(HEALTH_CRON_ID, undefined))
}

// ---------------------------------------------------------------------------------------------
// launchd agent (macOS)

function launchDomain(): string {
  return `gui/${process.getuid?.() ?? 501}`
}

function launchctl(args: string[]) {
  return run('launchctl', args, { nothrow: true, timeout: '30s' })
}

/** Writes the agent's plist and (re)loads it when it changed or is not loaded; returns what to report. */
export async function installLaunchAgent(p: HealthSchedule, dir: string): Promise<string> {
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
  return `launchd agent ${AGENT_LABEL}: ${written === 'unchanged' && loaded ? 'unchanged' : written} (${plistPath})`
}

export async function uninstallLaunchAgent(dir: string): Promise<string> {
  const plistPath = path.join(dir, `${AGENT_LABEL}.plist`)
  const loaded = (await launchctl(['print', `${launchDomain()}/${AGENT_LABEL}`])).ok
  if (loaded) await launchctl(['bootout', `${launchDomain()}/${AGENT_LABEL}`])
  const existed = fs.existsSync(plistPath)
  fs.rmSync(plistPath, { force: true })
  return `launchd agent ${AGENT_LABEL}: ${existed || loaded ? 'removed' : 'absent'}`
}
