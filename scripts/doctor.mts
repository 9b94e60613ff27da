// One command that explains what is wrong: pre-flight, container states, memory, disk and recent
// logs against the catalog of known failures (lib/monitor/catalog.mts). --fix applies the safe fixes in
// order and checks again. Exit 0 when nothing is found, 1 when something is. With --json, stdout
// holds only JSON (progress goes to stderr).
import { defineScript, type Flags, runScript, say, warn } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { DISK_CRITICAL_FLAG, DISK_WARNING_FLAG } from '../lib/monitor/disk-check.mts'
import { analyse, doctorReading, formatFindings } from '../lib/monitor/doctor.mts'
import { applyFixes, fixReport, planFixes } from '../lib/monitor/doctor-fix.mts'
import { logFilesToScan } from '../lib/monitor/doctor-logs.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/doctor.mts [--fix] [options]',
  summary:
    'Explains what is wrong with the stack: pre-flight checks, container states, memory per service and in\n' +
    'total, free disk (naming the biggest volumes and images when it runs low), and recent logs matched\n' +
    'against known failure signatures, each with the command that fixes it.',
  flags: {
    fix: { type: 'boolean', help: 'apply the fixes marked safe (migrations, restarts), then check again' },
    since: { type: 'string', env: 'DOCTOR_SINCE', default: '1h', help: 'how far back to read logs' },
    tail: { type: 'string', env: 'DOCTOR_TAIL', default: '300', help: 'log lines per service' },
    'log-file': {
      type: 'string',
      path: true,
      multiple: true,
      env: 'DOCTOR_LOG_FILES',
      help: 'also scan this log (nginx error.log, certbot; frpc.log in FRP_LOG_DIR is read anyway); repeatable',
    },
    json: {
      type: 'boolean',
      help: 'print the findings as JSON (with --fix: {found, applied, after}); progress goes to stderr',
    },
    'disk-warning': { ...DISK_WARNING_FLAG, help: 'disk counts as low below this much free (as health)' },
    'disk-critical': { ...DISK_CRITICAL_FLAG, help: 'as health' },
    'env-file': ENV_FILE_FLAG,
  },
})

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const reading = doctorReading(flags)
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const opts = { ...reading, logFiles: logFilesToScan(flags['log-file']) }
  const findings = await analyse(cfg, opts)
  if (!flags.fix || findings.length === 0) {
    if (flags.json) say(JSON.stringify(flags.fix ? fixReport(findings, [], findings) : findings, null, 2))
    else say(formatFindings(findings, cfg.stackDir))
    return findings.length ? 1 : 0
  }
  // With --json, stdout carries the JSON document only: the story goes to stderr.
  const tell = flags.json ? warn : say
  tell(formatFindings(findings, cfg.stackDir))
  const steps = planFixes(findings)
  if (steps.length === 0) {
    tell('\nnone of these has a fix doctor may apply by itself: follow the fix lines above')
    if (flags.json) say(JSON.stringify(fixReport(findings, [], findings), null, 2))
    return 1
  }
  tell('')
  const fixStarted = new Date().toISOString()
  await applyFixes(cfg, steps, tell)
  // Check again, reading only the logs written since the fixes began.
  const after = await analyse(cfg, { ...opts, since: fixStarted, preflight: false })
  tell(
    `\nafter the fixes: ${after.length === 0 ? 'nothing wrong found' : formatFindings(after, cfg.stackDir).replace(/^doctor: /, '')}`,
  )
  if (flags.json)
    say(
      JSON.stringify(
        fixReport(
          findings,
          steps.map((s) => s.label),
          after,
        ),
        null,
        2,
      ),
    )
  return after.length ? 1 : 0
}

await runScript('doctor', spec, main)
