// Health check for cron/launchd: local /_health, the stack's containers, and (with a public
// DOMAIN) https://DOMAIN/_health with its certificate. monitoring-plugins output and exit codes,
// change-only notifications, optional --heal. Scheduled by scripts/schedule.mts as a bundle.
// The checks are lib/monitor/health-checks.mts.
import { defineScript, type Flags, runScript } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { DISK_CRITICAL_FLAG, DISK_WARNING_FLAG } from '../lib/monitor/disk-check.mts'
import { healthChecks, healthSettings } from '../lib/monitor/health-checks.mts'
import { LOG_MAX_MB_FLAG, logMaxBytes, ROTATE_LOG_FLAG, rotateLog } from '../lib/monitor/log.mts'
import {
  JSON_REPORT_FLAG,
  runMonitor,
  runTimeoutFlag,
  unknownOnFailure,
} from '../lib/monitor/monitor-run.mts'
import { caFileFlag } from '../lib/monitor/probe.mts'

const spec = defineScript({
  usage: 'node dist/health.mjs [options]   (or: npx tsx scripts/health.mts)',
  summary:
    'Checks PostHog: local /_health, every enabled service, and https://DOMAIN/_health with its certificate.\n' +
    'Prints `POSTHOG OK|WARNING|CRITICAL|UNKNOWN - ...` and exits 0/1/2/3 (monitoring-plugins convention).',
  flags: {
    json: JSON_REPORT_FLAG,
    heal: {
      type: 'boolean',
      env: 'HEALTH_HEAL',
      help: 'restart exited or unhealthy services (at most once per service per hour)',
    },
    timeout: runTimeoutFlag('HEALTH_RUN_TIMEOUT'),
    'state-file': {
      type: 'string',
      env: 'HEALTH_STATE_FILE',
      path: true,
      help: 'state kept between runs (default STACK_DIR/health-state.json)',
    },
    'local-url': { type: 'string', env: 'HEALTH_LOCAL_URL', help: 'default http://127.0.0.1:PORT/_health' },
    'public-url': {
      type: 'string',
      env: 'HEALTH_PUBLIC_URL',
      help: 'default https://DOMAIN/_health when DOMAIN is not localhost',
    },
    'ca-file': caFileFlag('HEALTH_CA_FILE'),
    'disk-warning': DISK_WARNING_FLAG,
    'disk-critical': DISK_CRITICAL_FLAG,
    'rotate-log': ROTATE_LOG_FLAG,
    'log-max-mb': LOG_MAX_MB_FLAG,
    'env-file': ENV_FILE_FLAG,
  },
  notes:
    'Also probes the capture path through the local proxy (/e/, /i/v0/e/, /batch, /flags, /s/ and /,\n' +
    'for the services that are enabled) and the free disk of STACK_DIR and of Docker’s data.\n' +
    'Notifications: a POST to HEALTH_WEBHOOK_URL when the status changes, and every HEALTH_REMIND_HOURS\n' +
    'while CRITICAL (HEALTH_WEBHOOK_FORMAT=text for ntfy-style endpoints). A run that finds another\n' +
    'still running reports UNKNOWN (exit 3) and changes nothing; so does a bad flag, a broken .env or a\n' +
    'crash: what the check cannot judge is UNKNOWN, never CRITICAL. The whole run, webhook included,\n' +
    'ends within --timeout.',
})

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const maxBytes = logMaxBytes(flags['log-max-mb'])
  if (flags['rotate-log']) rotateLog(flags['rotate-log'], maxBytes)
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const s = healthSettings(flags, cfg)
  return runMonitor({
    name: 'health',
    stateFile: s.stateFile,
    json: flags.json,
    timeoutMs: s.runMs,
    check: (state, budget) => healthChecks(s, budget, state),
    notify: s.notify,
  })
}

await runScript('health', spec, main, {
  onFailure: unknownOnFailure('health'),
})
