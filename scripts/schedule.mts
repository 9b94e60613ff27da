// Installs the schedule for the health check: a marked crontab entry on Linux, a launchd agent
// on macOS; every 5 minutes by default. The scheduled command is a bundle started with the
// absolute node path (no npx, no tsx: cheap start). Re-running changes nothing.
// The pieces are lib/monitor/health-schedule.mts.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { defineScript, type Flags, runScript, say, UsageError } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import {
  bundleHealth,
  HEALTH_BUNDLE,
  healthSchedule,
  installHealthCron,
  installLaunchAgent,
  uninstallHealthCron,
  uninstallLaunchAgent,
} from '../lib/monitor/health-schedule.mts'
import { LOG_MAX_MB_FLAG } from '../lib/monitor/log.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/schedule.mts [--every 5m] [--uninstall]',
  summary:
    'Runs the health check on a schedule: a crontab entry on Linux, a launchd agent on macOS.\n' +
    `Bundles scripts/health.mts into ${HEALTH_BUNDLE} and schedules \`cd <repo> && <node> ${HEALTH_BUNDLE}\`, output appended to a log.`,
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
    'log-file': {
      type: 'string',
      path: true,
      default: 'logs/health.log',
      help: 'where the output goes, relative to the repository',
    },
    'log-max-mb': { ...LOG_MAX_MB_FLAG, help: 'the log is rotated to LOG.1 past this size' },
    heal: { type: 'boolean', help: 'schedule health with --heal (restart exited or unhealthy services)' },
    'env-file': ENV_FILE_FLAG,
  },
})

function platformOf(flag: string | undefined): 'darwin' | 'linux' {
  const platform = flag ?? process.platform
  if (platform !== 'darwin' && platform !== 'linux')
    throw new UsageError(`--platform=${platform} must be darwin or linux`)
  return platform
}

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const platform = platformOf(flags.platform)
  const agentsDir = path.resolve(
    flags['launch-agents-dir'] ?? path.join(os.homedir(), 'Library', 'LaunchAgents'),
  )
  if (flags.uninstall) {
    say(platform === 'darwin' ? await uninstallLaunchAgent(agentsDir) : await uninstallHealthCron())
    return 0
  }
  const p = healthSchedule({
    root: process.cwd(),
    logFile: flags['log-file'],
    logMaxMb: flags['log-max-mb'],
    envFile: flags['env-file'],
    every: flags.every,
    heal: flags.heal,
  })
  loadConfig({ envFile: flags['env-file'] }) // the check must be able to start
  fs.mkdirSync(path.dirname(p.log), { recursive: true })
  say(`bundle ${HEALTH_BUNDLE}: ${await bundleHealth(p.root)}`)
  if (platform === 'darwin') say(await installLaunchAgent(p, agentsDir))
  else for (const line of await installHealthCron(p)) say(line)
  say(`health runs every ${p.minutes} min; output goes to ${p.log}`)
  return 0
}

await runScript('schedule', spec, main)
