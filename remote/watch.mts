// The outside view, from cron on the VPS: https://DOMAIN/_health through the tunnel, the
// certificate's remaining days, and that frps and nginx run. Same output, exit codes, state file
// and change-only notifications as the home health check (lib/monitor/). Runs bundled
// (dist/remote/watch.mjs) with plain node 18+; needs no STACK_DIR and no docker.
// The checks and the install are lib/monitor/watch-checks.mts.
import path from 'node:path'
import { defineScript, type Flags, runScript, say, UsageError } from '../lib/core/cli.mts'
import { LOG_MAX_MB_FLAG, logMaxBytes, ROTATE_LOG_FLAG, rotateLog } from '../lib/monitor/log.mts'
import {
  JSON_REPORT_FLAG,
  runMonitor,
  runTimeoutFlag,
  unknownOnFailure,
} from '../lib/monitor/monitor-run.mts'
import { notifySettings } from '../lib/monitor/notify.mts'
import { caFileFlag, readCaFile } from '../lib/monitor/probe.mts'
import { applyCronEntry, describeCronChange, parseEvery } from '../lib/monitor/schedule.mts'
import {
  installWatch,
  WATCH_SERVICES_DEFAULT,
  type WatchSettings,
  watchChecks,
  watchHome,
  watchSettings,
} from '../lib/monitor/watch-checks.mts'

const spec = defineScript({
  usage: 'node watch.mjs --domain ph.example.com [options]   (or: npx tsx remote/watch.mts)',
  summary:
    'Checks PostHog from the VPS: https://DOMAIN/_health, its certificate, and that frps and nginx run.\n' +
    'Prints `POSTHOG OK|WARNING|CRITICAL|UNKNOWN - ...` and exits 0/1/2/3. --install adds its crontab entry.',
  flags: {
    domain: { type: 'string', env: 'DOMAIN', help: 'public hostname PostHog is served at' },
    url: { type: 'string', env: 'WATCH_URL', help: 'URL to check (default https://DOMAIN/_health)' },
    'ca-file': caFileFlag('WATCH_CA_FILE'),
    services: {
      type: 'string',
      env: 'WATCH_SERVICES',
      default: WATCH_SERVICES_DEFAULT,
      help: 'systemd units (or process names) that must run',
    },
    'state-file': {
      type: 'string',
      env: 'WATCH_STATE_FILE',
      path: true,
      help: 'default ~/.posthog-watch/state.json',
    },
    'env-file': {
      type: 'string',
      env: 'WATCH_ENV_FILE',
      path: true,
      help: 'settings file (DOMAIN, HEALTH_WEBHOOK_URL, ...) (default ~/.posthog-watch/watch.env)',
    },
    timeout: runTimeoutFlag('WATCH_TIMEOUT'),
    json: JSON_REPORT_FLAG,
    install: { type: 'boolean', help: 'save the settings to --env-file and add the crontab entry' },
    uninstall: { type: 'boolean', help: 'remove the crontab entry' },
    every: { type: 'string', default: '5m', help: 'how often cron runs it (with --install)' },
    'log-file': {
      type: 'string',
      path: true,
      help: 'where cron appends the output (default ~/.posthog-watch/watch.log)',
    },
    'rotate-log': ROTATE_LOG_FLAG,
    'log-max-mb': LOG_MAX_MB_FLAG,
  },
  notes:
    'Notifications: HEALTH_WEBHOOK_URL, HEALTH_WEBHOOK_FORMAT (json|text) and HEALTH_REMIND_HOURS come from\n' +
    'the environment or the settings file (never from the command line: the URL may hold a token).\n' +
    'A check it cannot judge (a bad flag or setting, a crash) is UNKNOWN (exit 3); --install and\n' +
    '--uninstall exit 2 on bad input. The whole run, webhook included, ends within --timeout.',
})
type ScriptFlags = Flags<typeof spec.flags>

function check(s: WatchSettings, flags: ScriptFlags): Promise<number> {
  const ca = readCaFile(s.caFile)
  return runMonitor({
    name: 'watch',
    stateFile: s.stateFile,
    json: flags.json,
    timeoutMs: s.runMs,
    check: (_state, budget) => watchChecks(s, budget, ca),
    notify: notifySettings(s.notify, ca),
  })
}

async function install(s: WatchSettings, flags: ScriptFlags): Promise<number> {
  const minutes = parseEvery(flags.every)
  readCaFile(s.caFile) // a CA file cron could not read would fail every run: refuse it now
  const lines = await installWatch(s, {
    minutes,
    urlFlag: flags.url,
    logFile: path.resolve(flags['log-file'] ?? path.join(watchHome(), 'watch.log')),
    script: path.resolve(process.argv[1]!),
    execArgv: process.execArgv,
  })
  for (const line of lines) say(line)
  return 0
}

async function main(flags: ScriptFlags): Promise<number> {
  const maxBytes = logMaxBytes(flags['log-max-mb'])
  if (flags.install && flags.uninstall) throw new UsageError('--install and --uninstall exclude each other')
  if (flags.uninstall) {
    say(describeCronChange('watch', await applyCronEntry('watch', undefined)))
    return 0
  }
  if (flags['rotate-log']) rotateLog(flags['rotate-log'], maxBytes)
  const s = watchSettings(flags)
  return flags.install ? install(s, flags) : check(s, flags)
}

const isSetup = (argv: string[]) => argv.includes('--install') || argv.includes('--uninstall')

await runScript('watch', spec, main, {
  onFailure: unknownOnFailure('watch', (argv) => !isSetup(argv)),
})
