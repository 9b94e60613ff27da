// Pre-flight: what must hold before `up` touches anything. Each check returns
// `{ name, ok, message, fix }`; the estimates and comparisons are pure, the probes are thin I/O.
// Reused by doctor (lib/monitor/doctor.mts).
import fs from 'node:fs'
import path from 'node:path'
import { MIN_FREE_DISK_FIRST_START } from '../core/disk.mts'
import { docker, dockerBin } from '../core/docker.mts'
import { list, parseMemory } from '../core/env.mts'
import type { EnvPlan } from '../core/env-file.mts'
import { featureServices } from '../core/feature-catalog.mts'

export interface PreflightResult {
  name: 'docker-cli' | 'docker-daemon' | 'compose-version' | 'memory' | 'disk'
  ok: boolean
  message: string
  /** What to do about it; empty when ok. */
  fix: string
  /** Not checked, because a check it depends on failed (ok stays true: nothing more to fix). */
  skipped?: boolean
}

/** What pre-flight needs from the configuration (a full `Config` fits). */
export interface PreflightInput {
  stackDir: string
  disabledServices: string[]
  memoryLimits: Record<string, string>
}

export interface PreflightOptions {
  /** Services that will run; default: the hobby file's services minus DISABLED_SERVICES. */
  services?: string[]
  /** Free disk needed on STACK_DIR's filesystem, default 15 GiB (images of a first start). */
  minFreeDiskBytes?: number
}

/**
 * `!override` in the generated override needs docker compose 2.24.4 (compose-go v2.0.0-rc.3): 2.24.0
 * to 2.24.3 ignore the tag silently and would publish the proxy on 0.0.0.0:80 and :443 as well.
 */
export const MIN_COMPOSE = [2, 24, 4] as const
/** PostHog's own floor ("You REALLY need 8GB or more of memory", bin/deploy-hobby). */
export const POSTHOG_RECOMMENDED_BYTES = 8 * 1024 ** 3

const MiB = 1024 ** 2
const GiB = 1024 ** 3

/**
 * Typical resident memory of each service of the newest hobby file (00fa00d9) on a quiet
 * instance, in MiB. The whole trimmed stack (seven services disabled) was measured at about
 * 7.5 GB on a 16 GB machine, with clickhouse 1.5 GiB, web 1.5 GiB, worker 1.4 GiB and
 * elasticsearch 0.5 GiB; the other 2.6 GB are split here by role.
 */
export const SERVICE_MEMORY_MIB: Record<string, number> = {
  db: 150,
  redis7: 50,
  valkey: 30,
  clickhouse: 1536,
  zookeeper: 120,
  kafka: 500,
  'kafka-init': 0,
  worker: 1400,
  web: 1500,
  plugins: 250,
  'ingestion-general': 150,
  'ingestion-sessionreplay': 100,
  'recording-api': 80,
  'ingestion-error-tracking': 80,
  'ingestion-logs': 60,
  'ingestion-traces': 60,
  proxy: 40,
  objectstorage: 60,
  seaweedfs: 100,
  browserless: 150,
  asyncmigrationscheck: 0,
  temporal: 150,
  elasticsearch: 512,
  'temporal-admin-tools': 30,
  'temporal-ui': 40,
  'temporal-django-worker': 200,
  capture: 40,
  'capture-logs': 30,
  'replay-capture': 40,
  'property-defs-rs': 60,
  'property-defs-ai': 40,
  livestream: 30,
  'personhog-replica': 40,
  'personhog-router': 40,
  'feature-flags': 50,
  'hypercache-server': 40,
  cymbal: 150,
  'cymbal-resolution': 60,
  'cyclotron-janitor': 30,
}
const UNKNOWN_SERVICE_MIB = 100

/** A service's typical resident memory, in bytes (a guess of 100 MiB for one not in the table). */
export function serviceMemoryBytes(service: string): number {
  return (SERVICE_MEMORY_MIB[service] ?? UNKNOWN_SERVICE_MIB) * MiB
}

/**
 * Memory the stack needs, in bytes: each enabled service's typical use, capped by its
 * MEMORY_LIMITS entry (a limit is a ceiling, not a reservation).
 */
export function estimateStackMemory(input: PreflightInput, services?: string[]): number {
  const disabled = new Set(input.disabledServices)
  const names = (services ?? Object.keys(SERVICE_MEMORY_MIB)).filter((s) => !disabled.has(s))
  let total = 0
  for (const name of names) {
    const limit = input.memoryLimits[name]
    const typical = serviceMemoryBytes(name)
    total += limit ? Math.min(parseMemory(limit), typical) : typical
  }
  return total
}

export function formatBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`
}

/** Parses `2.29.7`, `v2.24.0-desktop.1` and the like; undefined when not a version. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const m = /v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim())
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined
}

export function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]!
  }
  return true
}

// ---- pure checks ------------------------------------------------------------------------------

const pass = (name: PreflightResult['name'], message: string): PreflightResult => ({
  name,
  ok: true,
  message,
  fix: '',
})

export function checkComposeVersion(output: string | undefined): PreflightResult {
  const min = MIN_COMPOSE.join('.')
  const v = output === undefined ? undefined : parseVersion(output)
  if (!v)
    return {
      name: 'compose-version',
      ok: false,
      message: 'Docker Compose v2 is not installed (docker compose version failed)',
      fix: `install the Docker Compose plugin ${min} or newer (Docker Desktop includes it)`,
    }
  if (!versionAtLeast(v, MIN_COMPOSE))
    return {
      name: 'compose-version',
      ok: false,
      message: `Docker Compose ${v.join('.')} is too old: the generated override needs ${min} or newer (older versions ignore !override and would publish PostHog on every interface)`,
      fix: `update Docker Desktop, or the docker-compose-plugin package, to Compose ${min} or newer`,
    }
  return pass('compose-version', `Docker Compose ${v.join('.')}`)
}

export function checkMemory(memTotal: number, needed: number): PreflightResult {
  const want = Math.max(needed, POSTHOG_RECOMMENDED_BYTES * 0.9)
  const have = formatBytes(memTotal)
  const message = `Docker can use ${have} of memory; the stack needs about ${formatBytes(needed)} (PostHog recommends at least 8 GB)`
  if (memTotal >= want) return pass('memory', message)
  const raiseTo = Math.ceil(want / GiB) + 1
  return {
    name: 'memory',
    ok: false,
    message,
    fix: `raise Docker Desktop's memory limit (Settings > Resources) to ${raiseTo} GB, or disable services via DISABLED_SERVICES / lower MEMORY_LIMITS in .env`,
  }
}

export function checkDisk(free: number, needed: number, where: string): PreflightResult {
  const message = `${formatBytes(free)} free on the filesystem of ${where}; needs ${formatBytes(needed)} (images and data)`
  if (free >= needed) return pass('disk', message)
  return {
    name: 'disk',
    ok: false,
    message,
    fix: `free at least ${formatBytes(needed - free)} there (e.g. docker system prune removes unused images), or set STACK_DIR to a bigger disk`,
  }
}

// ---- probes -----------------------------------------------------------------------------------

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** The docker binary's path, or undefined: DOCKER_BIN as given, else a search of PATH. */
export function findDocker(bin = dockerBin(), pathEnv = process.env.PATH ?? ''): string | undefined {
  if (bin.includes('/')) return isExecutable(bin) ? bin : undefined
  for (const dir of pathEnv.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, bin)
    if (isExecutable(candidate)) return candidate
  }
  return undefined
}

/** Free bytes for unprivileged users on the filesystem holding `dir` (or its nearest existing parent). */
export function freeDiskBytes(dir: string): number {
  let at = path.resolve(dir)
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at)
  const s = fs.statfsSync(at)
  return s.bavail * s.bsize
}

interface DockerInfo {
  MemTotal?: number
  ServerErrors?: string[]
  ServerVersion?: string
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).at(-1) ?? ''
}

/**
 * Runs every check, stopping early only where later checks cannot run (no CLI: nothing else;
 * daemon down: no memory figure). Touches nothing.
 */
export async function runPreflight(
  input: PreflightInput,
  opts: PreflightOptions = {},
): Promise<PreflightResult[]> {
  const results: PreflightResult[] = []
  const bin = findDocker()
  if (!bin) {
    results.push({
      name: 'docker-cli',
      ok: false,
      message: `the docker command (${dockerBin()}) was not found on PATH`,
      fix: 'install Docker Desktop (macOS) or Docker Engine (Linux), or set DOCKER_BIN to its path',
    })
    return results
  }
  results.push(pass('docker-cli', `docker CLI at ${bin}`))

  const info = await docker(['info', '--format', '{{json .}}'], { timeout: '20s', nothrow: true })
  let parsed: DockerInfo | undefined
  try {
    parsed = JSON.parse(info.stdout) as DockerInfo
  } catch {
    parsed = undefined
  }
  const serverError = parsed?.ServerErrors?.[0]
  const daemonUp = info.ok && parsed !== undefined && !serverError
  if (!daemonUp) {
    const why =
      info.exitCode === null ? 'no answer within 20 s' : serverError || lastLine(info.stderr) || 'no answer'
    results.push({
      name: 'docker-daemon',
      ok: false,
      message: `the Docker daemon does not answer: ${why}`,
      fix: 'start Docker Desktop (or `sudo systemctl start docker`) and wait until it is running',
    })
  } else results.push(pass('docker-daemon', `Docker ${parsed?.ServerVersion ?? ''} answers`.trim()))

  const compose = await docker(['compose', 'version', '--short'], { timeout: '20s', nothrow: true })
  results.push(checkComposeVersion(compose.ok ? compose.stdout : undefined))

  // Without a daemon, docker info's figures are zeros (Docker CLI >= 23 still prints them):
  // the memory Docker can use is not known, not 0 MiB.
  if (!daemonUp) results.push(notChecked('memory', 'the Docker daemon does not answer'))
  else if (typeof parsed?.MemTotal === 'number')
    results.push(checkMemory(parsed.MemTotal, estimateStackMemory(input, opts.services)))

  const minDisk = opts.minFreeDiskBytes ?? MIN_FREE_DISK_FIRST_START
  results.push(checkDisk(freeDiskBytes(input.stackDir), minDisk, input.stackDir))
  return results
}

function notChecked(name: PreflightResult['name'], because: string): PreflightResult {
  return { name, ok: true, skipped: true, message: `not checked: ${because}`, fix: '' }
}

export function failedChecks(results: PreflightResult[]): PreflightResult[] {
  return results.filter((r) => !r.ok)
}

/** One line per check: `ok   memory: ...`, `skip memory: not checked: ...` or `FAIL memory: ...; fix: ...`. */
export function formatPreflight(results: PreflightResult[], onlyFailures = false): string[] {
  return results
    .filter((r) => !onlyFailures || !r.ok)
    .map((r) => {
      if (!r.ok) return `FAIL ${r.name}: ${r.message}; fix: ${r.fix}`
      return `${r.skipped ? 'skip' : 'ok  '} ${r.name}: ${r.message}`
    })
}

/** What pre-flight needs, from the configuration as it will be (secrets may still be placeholders). */
export function preflightInput(plan: EnvPlan): PreflightInput {
  const raw = plan.raw
  return {
    stackDir: plan.stackDir,
    disabledServices: [...list(raw.DISABLED_SERVICES!), ...featureServices(list(raw.DISABLED_FEATURES!))],
    memoryLimits: Object.fromEntries(list(raw.MEMORY_LIMITS!).map((i) => i.split('=').map((s) => s.trim()))),
  }
}
