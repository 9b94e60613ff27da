// The job that brings PostHog back after a reboot or a power cut: pure builders for a systemd
// unit (Linux: `up` once docker.service has started) and a LaunchAgent (macOS: at login, wait for
// Docker Desktop, then `up`), their install and removal, and what the LaunchAgent runs at login.
import fs from 'node:fs'
import path from 'node:path'
import { sleep } from 'zx'
import { parseDuration, RuntimeFailure, UsageError } from '../core/cli.mts'
import { docker } from '../core/docker.mts'
import { loadConfig } from '../core/env.mts'
import { lastLine, run } from '../core/exec.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { formatElapsed } from '../core/health.mts'
import {
  plistKey as key,
  plistDocument,
  plistStringArray,
  plistStringDict,
  plistString as str,
} from '../core/plist.mts'
import { buildSystemdUnit } from '../core/service.mts'
import { scheduledPath, stableNodePath } from '../monitor/schedule.mts'
import { findDocker } from '../stack/preflight.mts'

export const BOOT_UNIT = 'posthog-homelab-boot.service'
export const BOOT_LABEL = 'com.posthog-homelab.boot'

export interface BootJob {
  /** The checkout: working directory of the job. */
  root: string
  /** Absolute node binary, and tsx's loader inside the checkout's node_modules. */
  node: string
  loader: string
  /** An absolute --env-file to pass on, when not the checkout's .env. */
  envFile?: string
  /** The job's environment: PATH with docker's directory first (and DOCKER_BIN when set). */
  environment: Record<string, string>
}

/** `node --import <tsx loader> <root>/<script> ...args`, every path absolute. */
export function nodeCommand(job: BootJob, script: string, args: string[] = []): string[] {
  const envFile = job.envFile ? ['--env-file', job.envFile] : []
  return [job.node, '--import', job.loader, path.join(job.root, script), ...args, ...envFile]
}

export interface SystemdBootOptions {
  /** The account that owns the checkout: `up` runs as it, never as root unless it owns the checkout. */
  user: string
  /** docker.service, or e.g. snap.docker.dockerd.service. */
  dockerUnit: string
  /** TimeoutStartSec: a first start pulls every image and runs every migration. */
  startTimeoutSec: number
}

/**
 * A oneshot unit ordered after Docker and requiring it: at boot systemd runs `up` once the
 * daemon is ready (docker.service is Type=notify), and shows it "active (exited)" when it is done.
 */
export function bootSystemdUnit(job: BootJob, o: SystemdBootOptions): string {
  return buildSystemdUnit({
    kind: 'oneshot',
    description: 'PostHog (posthog-homelab): start the stack once Docker is up after boot',
    after: [o.dockerUnit, 'network-online.target'],
    wants: ['network-online.target'],
    requires: [o.dockerUnit],
    user: o.user,
    groupFromUser: false,
    workingDirectory: job.root,
    environment: job.environment,
    execStart: nodeCommand(job, 'scripts/up.mts'),
    timeoutStartSec: o.startTimeoutSec,
    readWritePaths: [],
  })
}

export interface LaunchAgentBootOptions {
  logFile: string
  /** How long the job waits for Docker Desktop to answer before it gives up. */
  dockerWait: string
}

/**
 * A LaunchAgent that runs once at login (RunAtLoad, no KeepAlive): `boot --run` waits until
 * Docker Desktop answers, then runs `up`. Docker Desktop needs a logged-in user, hence an agent
 * (with automatic login) rather than a daemon.
 */
export function bootLaunchAgent(job: BootJob, o: LaunchAgentBootOptions): string {
  const body = [
    key('Label'),
    str(BOOT_LABEL),
    key('ProgramArguments'),
    ...plistStringArray(nodeCommand(job, 'scripts/boot.mts', ['--run', '--docker-wait', o.dockerWait])),
    key('WorkingDirectory'),
    str(job.root),
    key('RunAtLoad'),
    '<true/>',
    key('StandardOutPath'),
    str(o.logFile),
    key('StandardErrorPath'),
    str(o.logFile),
    key('EnvironmentVariables'),
    ...plistStringDict(job.environment),
  ]
  return plistDocument(body)
}

/** The name systemd should run `up` as: the checkout's owner, by name when /etc/passwd has it. */
export function ownerName(uid: number, passwd: string | undefined): string {
  for (const line of (passwd ?? '').split('\n')) {
    const [name, , id] = line.split(':')
    if (name && id === String(uid)) return name
  }
  return String(uid) // systemd's User= takes a numeric id as well
}

export function checkoutOwner(root: string, passwdFile = '/etc/passwd'): string {
  let passwd: string | undefined
  try {
    passwd = fs.readFileSync(passwdFile, 'utf8')
  } catch {}
  return ownerName(fs.statSync(root).uid, passwd)
}

// ---------------------------------------------------------------------------------------------
// At boot (macOS): wait for Docker Desktop

/**
 * Polls `docker info` until it answers or `timeoutMs` passes (every 5 s, or a tenth of a short
 * wait); says so each minute.
 */
export async function waitForDocker(
  timeoutMs: number,
  log: (line: string) => void,
  everyMs = Math.min(5000, Math.max(100, timeoutMs / 10)),
): Promise<boolean> {
  const started = Date.now()
  let lastSaid = started
  for (;;) {
    const res = await docker(['info', '--format', '{{.ServerVersion}}'], { timeout: '20s', nothrow: true })
    if (res.ok) return true
    const waited = Date.now() - started
    if (waited >= timeoutMs) return false
    if (Date.now() - lastSaid >= 60_000) {
      log(`still waiting for Docker (${Math.round(waited / 60_000)} min)`)
      lastSaid = Date.now()
    }
    await sleep(Math.min(everyMs, Math.max(0, timeoutMs - waited)))
  }
}

// ---------------------------------------------------------------------------------------------
// Install and remove

export type BootPlatform = 'linux' | 'darwin'

export function bootPlatform(raw: string): BootPlatform {
  if (raw !== 'darwin' && raw !== 'linux') throw new UsageError(`--platform=${raw} must be darwin or linux`)
  return raw
}

export interface BootOptions {
  /** The configuration `up` reads (resolved to an absolute path). */
  envFile: string
  log: (line: string) => void
  warn: (line: string) => void
}

/** What the job runs, and with which environment; refuses before writing anything. */
function jobFor(o: BootOptions, root = process.cwd()): BootJob {
  const loader = path.join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')
  if (!fs.existsSync(loader))
    throw new RuntimeFailure(`${loader} is missing`, 'run npm ci in the checkout first')
  const envFile = path.resolve(o.envFile)
  loadConfig({ envFile }) // the job must be able to start: a broken .env is bad input now, not at boot
  const found = findDocker()
  if (!found) o.warn('docker is not on PATH here: the job will not find it at boot until it is')
  const dockerPath = found && path.resolve(found)
  const environment: Record<string, string> = { PATH: scheduledPath(dockerPath) }
  if (process.env.DOCKER_BIN && dockerPath) environment.DOCKER_BIN = dockerPath
  return { root, node: stableNodePath(), loader, envFile, environment }
}

function systemctl(args: string[]) {
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
    const denied = code === 'EACCES' || code === 'EPERM'
    throw new RuntimeFailure(
      `cannot write ${what} into ${dir} (${denied ? 'permission denied' : code})`,
      denied
        ? 'run it as root, keeping your PATH: sudo env "PATH=$PATH" npm run boot'
        : 'give a folder that exists and can hold it',
    )
  }
}

export interface SystemdInstall extends BootOptions {
  unitDir: string
  dockerUnit: string
  /** How long systemd lets `up` run, e.g. 90m. */
  startTimeout: string
}

/** Writes and enables the unit; a re-run that changes nothing says `unchanged`. */
export async function installSystemd(o: SystemdInstall): Promise<void> {
  const unitDir = path.resolve(o.unitDir)
  if (!/^[\w@.:-]+\.service$/.test(o.dockerUnit))
    throw new UsageError(`--docker-unit=${o.dockerUnit} must be a unit name such as docker.service`)
  const startTimeoutSec = parseDuration(o.startTimeout, '--start-timeout') / 1000
  const job = jobFor(o)
  const user = checkoutOwner(job.root)
  assertWritable(unitDir, BOOT_UNIT)
  const file = path.join(unitDir, BOOT_UNIT)
  const unit = bootSystemdUnit(job, { user, dockerUnit: o.dockerUnit, startTimeoutSec })
  const written = writeFileAtomic(file, unit, { mode: 0o644, backup: true })
  if (written !== 'unchanged') await systemctlOrFail(['daemon-reload'])
  const enabled = (await systemctl(['is-enabled', '--quiet', BOOT_UNIT])).ok
  if (!enabled) await systemctlOrFail(['enable', BOOT_UNIT])
  o.log(`systemd unit ${BOOT_UNIT}: ${written === 'unchanged' && enabled ? 'unchanged' : written} (${file})`)
  o.log(
    `after each boot, once ${o.dockerUnit} has started, it runs as ${user}: ${nodeCommand(job, 'scripts/up.mts').join(' ')}`,
  )
  o.log(`see the last run with: systemctl status ${BOOT_UNIT}; journalctl -u ${BOOT_UNIT}`)
}

export async function uninstallSystemd(o: { unitDir: string; log: (line: string) => void }): Promise<void> {
  const file = path.join(path.resolve(o.unitDir), BOOT_UNIT)
  const existed = fs.existsSync(file)
  const enabled = (await systemctl(['is-enabled', '--quiet', BOOT_UNIT])).ok
  if (existed) assertWritable(path.dirname(file), BOOT_UNIT)
  if (enabled) await systemctlOrFail(['disable', BOOT_UNIT])
  if (existed) {
    fs.rmSync(file, { force: true })
    await systemctlOrFail(['daemon-reload'])
  }
  o.log(`systemd unit ${BOOT_UNIT}: ${existed || enabled ? 'removed' : 'absent'}`)
}

export interface LaunchdInstall extends BootOptions {
  agentsDir: string
  /** The job's output, relative to the checkout unless absolute. */
  logFile: string
  /** How long the job waits for Docker Desktop, e.g. 10m. */
  dockerWait: string
}

/**
 * Writes the LaunchAgent; launchd loads every agent in ~/Library/LaunchAgents at login, which is
 * when it should run. It is not loaded now: loading a RunAtLoad agent would run `up` at once.
 */
export function installLaunchd(o: LaunchdInstall): void {
  parseDuration(o.dockerWait, '--docker-wait')
  const job = jobFor(o)
  const logFile = path.resolve(job.root, o.logFile)
  const dir = path.resolve(o.agentsDir)
  assertWritable(dir, `${BOOT_LABEL}.plist`)
  fs.mkdirSync(path.dirname(logFile), { recursive: true })
  const file = path.join(dir, `${BOOT_LABEL}.plist`)
  const written = writeFileAtomic(file, bootLaunchAgent(job, { logFile, dockerWait: o.dockerWait }), {
    backup: true,
  })
  o.log(`launchd agent ${BOOT_LABEL}: ${written} (${file})`)
  o.log(`at each login it waits for Docker Desktop (up to ${o.dockerWait}), then runs up; output: ${logFile}`)
  o.log(
    'for a power cut to bring PostHog back, turn on automatic login (System Settings > Users & Groups) and ' +
      'Docker Desktop\'s "Start Docker Desktop when you sign in"',
  )
}

export async function uninstallLaunchd(o: { agentsDir: string; log: (line: string) => void }): Promise<void> {
  const file = path.join(path.resolve(o.agentsDir), `${BOOT_LABEL}.plist`)
  const target = `gui/${process.getuid?.() ?? 501}/${BOOT_LABEL}`
  const loaded = (await run('launchctl', ['print', target], { nothrow: true, timeout: '30s' })).ok
  if (loaded) await run('launchctl', ['bootout', target], { nothrow: true, timeout: '30s' })
  const existed = fs.existsSync(file)
  fs.rmSync(file, { force: true })
  o.log(`launchd agent ${BOOT_LABEL}: ${existed || loaded ? 'removed' : 'absent'}`)
}

// ---------------------------------------------------------------------------------------------
// At login (macOS): what the LaunchAgent runs

/** Waits for Docker Desktop, then runs `up` in the checkout; returns up's exit code. */
export async function runAtLogin(o: { dockerWait: string; envFile: string; log: (line: string) => void }) {
  const waitMs = parseDuration(o.dockerWait, '--docker-wait')
  const envFile = ['--env-file', path.resolve(o.envFile)]
  o.log(`${new Date().toISOString()} boot: waiting for Docker (up to ${formatElapsed(waitMs)})`)
  if (!(await waitForDocker(waitMs, o.log)))
    throw new RuntimeFailure(
      `Docker did not answer within ${formatElapsed(waitMs)}; PostHog was not started`,
      'set Docker Desktop to start when you sign in (Settings > General), or raise --docker-wait',
    )
  o.log(`${new Date().toISOString()} boot: Docker is up; running up`)
  const loader = path.join(process.cwd(), 'node_modules', 'tsx', 'dist', 'loader.mjs')
  const res = await run(process.execPath, ['--import', loader, 'scripts/up.mts', ...envFile], {
    inherit: true,
    nothrow: true,
    timeout: '3h',
  })
  o.log(`${new Date().toISOString()} boot: up finished (exit ${res.exitCode ?? res.signal})`)
  return res.exitCode ?? 1
}
