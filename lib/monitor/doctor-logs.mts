// The logs doctor reads: `docker compose logs` of the stack's services and the end of other log
// files (frpc's where scripts/frpc-setup.mts puts it, and those named with --log-file), matched
// against the failure catalog.
import fs from 'node:fs'
import path from 'node:path'
import { UsageError, warn } from '../core/cli.mts'
import { CATALOG, matchLine } from './catalog.mts'
import { addFinding, type Finding, fromSignature } from './doctor-finding.mts'

/** `docker compose logs --no-color` lines: `<service>-<n>  | <text>`. */
export function parseComposeLogs(stdout: string): { service: string; line: string }[] {
  const out: { service: string; line: string }[] = []
  for (const raw of stdout.split('\n')) {
    const m = /^(\S+?)(?:-\d+)?\s+\|\s?(.*)$/.exec(raw)
    if (m) out.push({ service: m[1]!, line: m[2]! })
  }
  return out
}

export function logFindings(lines: { service: string; line: string }[], catalog = CATALOG): Finding[] {
  const findings: Finding[] = []
  for (const { service, line } of lines) {
    const sig = matchLine(line, service, catalog)
    if (sig) addFinding(findings, fromSignature(sig, service, `${service} | ${line}`))
  }
  return findings
}

export const LOG_TAIL_BYTES = 256 * 1024

/**
 * The last `maxBytes` of a file: memory stays bounded whatever the log's size. Undefined when the
 * file does not exist.
 */
export function readTail(file: string, maxBytes = LOG_TAIL_BYTES): string | undefined {
  let fd: number
  try {
    fd = fs.openSync(file, 'r')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  try {
    const size = fs.fstatSync(fd).size
    const start = Math.max(0, size - maxBytes)
    const buf = Buffer.alloc(Math.min(size, maxBytes))
    let got = 0
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, start + got)
      if (n === 0) break
      got += n
    }
    // The first line may be cut at its start; it is kept: its end is still what the log said
    // (and one line longer than the window, as a sparse or binary file has, is all there is).
    return buf.subarray(0, got).toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

/** The end of a log file (frpc, nginx, certbot), matched against the catalog. */
export function fileFindings(file: string, text: string, catalog = CATALOG): Finding[] {
  const findings: Finding[] = []
  const lines = text.slice(-LOG_TAIL_BYTES).split('\n')
  for (const line of lines) {
    const sig = matchLine(line, undefined, catalog)
    if (sig) addFinding(findings, fromSignature(sig, sig.component ?? sig.services?.[0] ?? file, line))
  }
  return findings
}

/** Why `file` cannot be read, or undefined when it can. */
export function unreadable(file: string): string | undefined {
  try {
    fs.accessSync(file, fs.constants.R_OK)
    return fs.statSync(file).isFile() ? undefined : 'not a file'
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error'
  }
}

/** frpc's log where scripts/frpc-setup.mts puts it (FRP_LOG_DIR), when there is one. */
export function defaultLogFiles(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): string[] {
  const dir = env.FRP_LOG_DIR || (platform === 'darwin' ? '/usr/local/var/log/frp' : '/var/log/frp')
  const frpc = path.join(dir, 'frpc.log')
  if (!fs.existsSync(frpc)) return []
  const why = unreadable(frpc)
  if (why) warn(`frpc's log ${frpc} cannot be read (${why}): not scanned; run doctor with sudo to include it`)
  return why ? [] : [frpc]
}

/** A log the user named must be readable: a mistyped path would otherwise scan nothing and report all clear. */
export function namedLogFiles(files: string[]): string[] {
  for (const file of files) {
    const why = unreadable(file)
    if (why)
      throw new UsageError(
        `--log-file ${file} cannot be read (${why}): check the path, or run doctor with sudo for a root-only log`,
      )
  }
  return files
}

/** The log files to scan: those named (each must be readable), then frpc's when it is there. */
export function logFilesToScan(named: string[]): string[] {
  return [...new Set([...namedLogFiles(named), ...defaultLogFiles()])]
}
