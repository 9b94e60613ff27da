// The job that brings PostHog back after a reboot or a power cut: pure builders for a systemd
// unit (Linux: `up` once docker.service has started) and a LaunchAgent (macOS: at login, wait for
// Docker Desktop, then `up`), plus the thin I/O around them. scripts/boot.mts installs them.
import fs from 'node:fs'
import path from 'node:path'
import { docker } from '../core/docker.mts'
import {
  plistKey as key,
  plistDocument,
  plistStringArray,
  plistStringDict,
  plistString as str,
} from '../core/plist.mts'
import { buildSystemdUnit } from '../core/service.mts'

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
    await new Promise((r) => setTimeout(r, Math.min(everyMs, Math.max(0, timeoutMs - waited))))
  }
}
