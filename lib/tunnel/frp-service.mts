// The services that keep frp running: systemd units (frpc on a Linux home box, frps on the VPS),
// a LaunchDaemon for frpc on macOS (starts at boot, before any login), and frp's own config check.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from '../core/cli.mts'
import { run } from '../core/exec.mts'
import { type WriteResult, writeFileAtomic } from '../core/fs.mts'
import { buildLaunchDaemonPlist, buildSystemdUnit } from '../core/service.mts'

export const FRPC_LAUNCHD_LABEL = 'dev.posthog-homelab.frpc'

export interface FrpUnitOptions {
  binPath: string
  configFile: string
  logDir: string
  /** frps runs as a dedicated system user; frpc as root (it reads a root-only token file). */
  user?: string
}

export function frpsUnit(o: FrpUnitOptions): string {
  return buildSystemdUnit({
    description: 'frp server: the VPS end of the posthog-homelab tunnel',
    execStartPre: [o.binPath, 'verify', '-c', o.configFile],
    execStart: [o.binPath, '-c', o.configFile],
    user: o.user ?? 'frps',
    readWritePaths: [o.logDir],
  })
}

export function frpcUnit(o: FrpUnitOptions): string {
  return buildSystemdUnit({
    description: 'frp client: the home end of the posthog-homelab tunnel',
    execStartPre: [o.binPath, 'verify', '-c', o.configFile],
    execStart: [o.binPath, '-c', o.configFile],
    user: o.user,
    readWritePaths: [o.logDir],
  })
}

/**
 * frpc's own log goes to frpc.log (log.to); what it prints besides (a config error at start-up on
 * stderr, a crash) lands in two separate files, so an error is never lost among ordinary output.
 */
export function frpcLaunchDaemon(o: { binPath: string; configFile: string; logDir: string }): string {
  return buildLaunchDaemonPlist({
    label: FRPC_LAUNCHD_LABEL,
    programArguments: [o.binPath, '-c', o.configFile],
    stdoutPath: `${o.logDir}/frpc.stdout.log`,
    stderrPath: `${o.logDir}/frpc.stderr.log`,
  })
}

/**
 * `frpc|frps verify -c` on `text` written to a temporary file in `dir`, before it replaces the
 * installed config: a file frp rejects never reaches the running service.
 */
export async function verifyFrpConfig(o: {
  kind: 'frpc' | 'frps'
  bin: string
  /** Where the temporary copy goes (the config dir). */
  dir: string
  text: string
  /** What to do when frp rejects it. */
  hint: string
}): Promise<void> {
  const { kind, hint } = o
  const tmp = path.join(o.dir, `.${kind}.toml.verify-${process.pid}`)
  fs.writeFileSync(tmp, o.text, { mode: 0o600 })
  try {
    const r = await run(o.bin, ['verify', '-c', tmp], { nothrow: true, timeout: '30s' })
    if (r.exitCode !== 0)
      throw new RuntimeFailure(
        `${kind} verify rejected the new ${kind}.toml: ${(r.stdout + r.stderr).trim().split('\n').at(-1)}; the installed file was left as it was`,
        hint,
      )
  } finally {
    fs.rmSync(tmp, { force: true })
  }
}

/** Writes the config frp accepted (the replaced file kept as a backup), and says so. */
export function writeFrpConfig(
  file: string,
  text: string,
  mode: number,
  say: (line: string) => void,
): WriteResult {
  const result = writeFileAtomic(file, text, { mode, backup: true })
  say(result === 'unchanged' ? `${file} is up to date` : `${file} ${result}`)
  return result
}
