// One command that explains what is wrong: pre-flight, container states, memory, disk and recent
// logs against the catalog of known failures (lib/monitor/catalog.mts). --fix applies the safe fixes in
// order and checks again. Exit 0 when nothing is found, 1 when something is. With --json, stdout
// holds only JSON (progress goes to stderr).
import fs from 'node:fs'
import path from 'node:path'
import { defineScript, type Flags, runScript, say, UsageError, warn } from '../lib/core/cli.mts'
import { parseThreshold } from '../lib/core/disk.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { analyse, applyFixes, type Finding, formatFindings, planFixes } from '../lib/monitor/doctor.mts'

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
    'disk-warning': {
      type: 'string',
      env: 'HEALTH_DISK_WARNING',
      default: '15%,10GiB',
      help: 'disk counts as low below this much free (as health)',
    },
    'disk-critical': { type: 'string', env: 'HEALTH_DISK_CRITICAL', default: '5%,3GiB', help: 'as health' },
    'env-file': ENV_FILE_FLAG,
  },
})
type ScriptFlags = Flags<typeof spec.flags>

function unreadable(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK)
    return fs.statSync(file).isFile() ? undefined : 'not a file'
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error'
  }
}

/** frpc's log where scripts/frpc-setup.mts puts it (FRP_LOG_DIR), when there is one. */
function defaultLogFiles(): string[] {
  const dir =
    process.env.FRP_LOG_DIR || (process.platform === 'darwin' ? '/usr/local/var/log/frp' : '/var/log/frp')
  const frpc = path.join(dir, 'frpc.log')
  if (!fs.existsSync(frpc)) return []
  const why = unreadable(frpc)
  if (why) warn(`frpc's log ${frpc} cannot be read (${why}): not scanned; run doctor with sudo to include it`)
  return why ? [] : [frpc]
}

/** A log the user named must be readable: a mistyped path would otherwise scan nothing and report all clear. */
function namedLogFiles(files: string[]): string[] {
  for (const file of files) {
    const why = unreadable(file)
    if (why)
      throw new UsageError(
        `--log-file ${file} cannot be read (${why}): check the path, or run doctor with sudo for a root-only log`,
      )
  }
  return files
}

async function main(flags: ScriptFlags): Promise<number> {
  const tail = Number(flags.tail)
  if (!Number.isInteger(tail) || tail < 1)
    throw new UsageError(`--tail=${flags.tail} must be a whole number above 0`)
  if (!/^(\d+(s|m|h)|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?)$/.test(String(flags.since)))
    throw new UsageError(`--since=${flags.since} must be a duration such as 30m or 2h, or an RFC 3339 time`)
  const diskThresholds = {
    warning: parseThreshold(String(flags['disk-warning']), '--disk-warning'),
    critical: parseThreshold(String(flags['disk-critical']), '--disk-critical'),
  }
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const logFiles = [...new Set([...namedLogFiles(flags['log-file'] as string[]), ...defaultLogFiles()])]
  const opts = { since: String(flags.since), tail, logFiles, diskThresholds }
  const findings = await analyse(cfg, opts)
  const json = Boolean(flags.json)
  if (!flags.fix || findings.length === 0) {
    if (json) say(JSON.stringify(flags.fix ? fixReport(findings, [], findings) : findings, null, 2))
    else say(formatFindings(findings, cfg.stackDir))
    return findings.length ? 1 : 0
  }
  // With --json, stdout carries the JSON document only: the story goes to stderr.
  const tell = json ? warn : say
  tell(formatFindings(findings, cfg.stackDir))
  const steps = planFixes(findings)
  if (steps.length === 0) {
    tell('\nnone of these has a fix doctor may apply by itself: follow the fix lines above')
    if (json) say(JSON.stringify(fixReport(findings, [], findings), null, 2))
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
  if (json)
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

/** `doctor --fix --json`: what was found, the fixes applied (in order), what is left. */
function fixReport(found: Finding[], applied: string[], after: Finding[]) {
  return { found, applied, after }
}

await runScript('doctor', spec, main)
