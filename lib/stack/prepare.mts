// prepareStack: everything STACK_DIR needs before `docker compose up`: the PostHog checkout
// (shallow, partial, sparse), the copied compose files and the env_files they name, the generated
// override, ClickHouse's log settings and the env file Compose reads, the compose/ scripts and
// share/ (GeoLite2). Everything is computed and checked before the first file is written; a re-run
// with nothing to change changes no file.
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { brotliDecompress } from 'node:zlib'
import { type FlagSpec, parseDuration, UsageError } from '../core/cli.mts'
import { PROJECT_NAME } from '../core/docker.mts'
import { download, downloadProgress } from '../core/download.mts'
import type { Config } from '../core/env.mts'
import { FEATURES } from '../core/feature-catalog.mts'
import { readIfExists, type WriteResult, writeFileAtomic } from '../core/fs.mts'
import { STACK_MARKER } from '../core/stack-dir.mts'
import {
  buildContexts,
  type ComposeFile,
  envFiles,
  interpolatedVariables,
  mountedPaths,
  parseCompose,
} from './compose.mts'
import { type FetchResult, fetchPosthog, setSparsePaths } from './gitfetch.mts'
import {
  buildOverride,
  CLICKHOUSE_CONFIG_FILE,
  clickhouseLogsConfig,
  type OverrideResult,
} from './override.mts'
import {
  describeVersion,
  formatVersion,
  type PosthogVersion,
  pinnedConfig,
  resolveVersion,
  VERSION_FILE,
} from './posthog-version.mts'
import { formatBytes, serviceMemoryBytes } from './preflight.mts'

/** `--no-geoip` of the steps that prepare the stack (prepare, up, upgrade). */
export const NO_GEOIP_FLAG = {
  type: 'boolean',
  env: 'HOMELAB_NO_GEOIP',
  help: 'skip the GeoLite2-City download (GEOIP_URL overrides where it comes from)',
} as const satisfies FlagSpec

export interface PrepareOptions {
  /** Download GeoLite2-City into share/ (failures are a notice, never fatal). */
  geoip: boolean
  /** Progress lines (the script passes `say`). */
  log: (line: string) => void
}

export interface PrepareResult {
  /** Files written (created or updated), relative to STACK_DIR; `posthog/` when the checkout moved. */
  changed: string[]
  /** The PostHog commit checked out in STACK_DIR/posthog. */
  commit: string
  /** The commit checked out before this run, if any (upgrades compare the two). */
  previousCommit?: string
  /** What runs: the commit and image tags (a branch such as latest frozen at one commit). */
  version: PosthogVersion
  /** Every service the copied compose file defines. */
  services: string[]
  enabledServices: string[]
  /** Services switched off (features, DISABLED_SERVICES and what served only them). */
  disabledServices: string[]
  /** One line per feature or service switched off, with what it costs and the memory it saves. */
  switchedOff: string[]
  notices: string[]
}

export const CHECKOUT_DIR = 'posthog'
/** The compose files: upstream name → name in STACK_DIR, as every upstream installer lays it out. */
export const COMPOSE_FILES: Record<string, string> = {
  'docker-compose.base.yml': 'docker-compose.base.yml',
  'docker-compose.hobby.yml': 'docker-compose.yml',
}
/** The user's own additions, never written by the toolkit; used whenever it exists. */
export const LOCAL_COMPOSE_FILE = 'docker-compose.local.yml'
export const DEFAULT_GEOIP_URL = 'https://mmdbcdn.posthog.net/'

// The scripts upstream installers write into compose/ (mounted at /compose in web and
// temporal-django-worker); see reference posthog-hobby.md §1.
export const COMPOSE_SCRIPTS: Record<string, string> = {
  start: '#!/bin/bash\n/compose/wait\n./bin/migrate\n./bin/docker-server\n',
  wait: `#!/usr/bin/env python3
# Waits until ClickHouse and Postgres accept TCP connections (retrying every 5 s).
import socket
import time


def ready(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


print("Waiting for ClickHouse and Postgres to be ready", flush=True)
while not (ready("clickhouse", 9000) and ready("db", 5432)):
    time.sleep(5)
print("ClickHouse and Postgres are ready", flush=True)
`,
  'temporal-django-worker': '#!/bin/bash\n./bin/temporal-django-worker\n',
}

/** Values for variables the compose files interpolate that `.env` does not set itself. */
export function derivedVariables(cfg: Config): Record<string, string> {
  return {
    DOMAIN: cfg.domain,
    POSTHOG_SECRET: cfg.posthogSecret,
    ENCRYPTION_SALT_KEYS: cfg.encryptionSaltKeys,
    REGISTRY_URL: cfg.registryUrl,
    POSTHOG_APP_TAG: cfg.appTag,
    POSTHOG_NODE_TAG: cfg.nodeTag,
    // TLS ends at the VPS's nginx; Caddy serves plain HTTP (the override's CADDYFILE). These
    // only matter to a base file whose CADDYFILE the override could not replace.
    TLS_BLOCK: '',
    CADDY_TLS_BLOCK: 'auto_https off',
    CADDY_HOST: 'http://',
  }
}

/** One `KEY=value` line Compose reads literally: bare when safe, else single-quoted (no expansion). */
export function composeEnvLine(key: string, value: string): string {
  if (/^[A-Za-z0-9_./:@+,=-]*$/.test(value)) return `${key}=${value}`
  if (value.includes("'") || /[\r\n]/.test(value))
    throw new UsageError(
      `${key} contains a quote or a line break, which Compose's env file cannot hold literally`,
    )
  return `${key}='${value}'`
}

/**
 * The env file Compose reads for interpolation (STACK_DIR/.env): the project name and files, so
 * `cd STACK_DIR && docker compose ps` addresses the same stack as the scripts, and a value for
 * every variable the compose files interpolate, from `.env` or derived. One the files need without
 * a default and nobody sets is a UsageError now, not a blank discovered at run time.
 */
export function buildStackEnv(
  cfg: Config,
  hobby: ComposeFile,
  base?: ComposeFile,
  composeFiles: string[] = ['docker-compose.yml', 'docker-compose.override.yml'],
): string {
  const derived = derivedVariables(cfg)
  const lines = [
    '# Generated by posthog-homelab (scripts/prepare.mts) from .env: the values Compose interpolates',
    '# into the compose files. Edit .env at the project root instead; this file is rewritten.',
    `COMPOSE_PROJECT_NAME=${PROJECT_NAME}`,
    `COMPOSE_FILE=${composeFiles.join(':')}`,
  ]
  const missing: string[] = []
  for (const v of interpolatedVariables(hobby, base)) {
    const value = cfg.raw[v.name] ?? derived[v.name]
    if (value === undefined) {
      if (!v.hasDefault) missing.push(v.name)
      continue
    }
    lines.push(composeEnvLine(v.name, value))
  }
  if (missing.length)
    throw new UsageError(
      `the compose files need ${missing.join(', ')} but neither .env nor the toolkit sets ${missing.length > 1 ? 'them' : 'it'}: add ${missing[0]}=... to ${cfg.envFile}`,
    )
  return `${lines.join('\n')}\n`
}

function readCompose(dir: string, file: string): ComposeFile {
  const text = readIfExists(path.join(dir, file))
  if (text === undefined)
    throw new UsageError(
      `this PostHog version has no ${file}: set POSTHOG_APP_TAG to a version with the hobby deployment`,
    )
  return parseCompose(text, file)
}

function isMmdb(data: Buffer): boolean {
  // Every MaxMind DB ends with a metadata section introduced by this marker.
  return data.lastIndexOf(Buffer.from('\xab\xcd\xefMaxMind.com', 'latin1')) >= 0
}

async function downloadGeoip(url: string): Promise<Buffer> {
  const { progress, done } = downloadProgress('downloading GeoLite2-City')
  let body: Buffer
  try {
    const base = parseDuration(process.env.HOMELAB_FETCH_BACKOFF ?? '2s', 'HOMELAB_FETCH_BACKOFF')
    body = await download(url, { timeoutMs: 300_000, attempts: 2, progress, backoffMs: () => base })
  } finally {
    done()
  }
  // mmdbcdn.posthog.net serves the database brotli-compressed (upstream pipes it through `brotli -d`).
  const data = await promisify(brotliDecompress)(body).catch(() => body)
  if (!isMmdb(data)) throw new Error('the download is not a MaxMind database')
  return data
}

export interface FetchedSources {
  fetched: FetchResult
  hobby: ComposeFile
  base: ComposeFile
  /** Repository paths the working tree holds: the compose files, their env_files and mounts. */
  paths: string[]
  /** The env_files to copy next to the compose files (repository paths = STACK_DIR paths). */
  envFiles: string[]
  notices: string[]
}

/** Repository paths the stack reads besides the compose files: env_files and ./posthog/ mounts. */
export function neededPaths(hobby: ComposeFile, base: ComposeFile): { envFiles: string[]; mounts: string[] } {
  return {
    envFiles: [...new Set(envFiles(hobby, base).map((e) => e.path))],
    mounts: [...new Set(mountedPaths(hobby, base).map((m) => m.path))],
  }
}

/**
 * The PostHog checkout at `cfg.appTag`: the compose files first (they tell which other paths are
 * needed), then the sparse set widened to exactly the env_files and mounts they name.
 */
export async function fetchSources(
  cfg: Pick<Config, 'repoUrl' | 'appTag' | 'stackDir'>,
  log: (line: string) => void,
): Promise<FetchedSources> {
  const checkout = path.join(cfg.stackDir, CHECKOUT_DIR)
  const fetchOpts = { repoUrl: cfg.repoUrl, ref: cfg.appTag, dir: checkout, log }
  const initialPaths = Object.keys(COMPOSE_FILES)
  const fetched = await fetchPosthog({ ...fetchOpts, paths: initialPaths })
  const hobby = readCompose(checkout, 'docker-compose.hobby.yml')
  const base = readCompose(checkout, 'docker-compose.base.yml')
  const needed = neededPaths(hobby, base)
  const paths = [...initialPaths, ...needed.envFiles, ...needed.mounts]
  await setSparsePaths({ ...fetchOpts, paths })
  const notices: string[] = []
  for (const use of envFiles(hobby, base))
    if (use.required && !fs.existsSync(path.join(checkout, use.path)))
      throw new UsageError(
        `service ${use.service} reads the env_file ${use.path}, which this PostHog version does not have: pin POSTHOG_APP_TAG to another version`,
      )
  for (const m of mountedPaths(hobby, base))
    if (!fs.existsSync(path.join(checkout, m.path)))
      notices.push(`${m.service} mounts ./posthog/${m.path}, which this PostHog version does not have`)
  const present = needed.envFiles.filter((f) => fs.existsSync(path.join(checkout, f)))
  return { fetched, hobby, base, paths, envFiles: present, notices }
}

/** One line per feature or service switched off: what it costs and about how much memory it saves. */
export function describeSwitchedOff(override: OverrideResult): string[] {
  const { plan } = override
  const saved = (services: string[]) => formatBytes(services.reduce((n, s) => n + serviceMemoryBytes(s), 0))
  const lines = plan.features.map((name) => {
    const services = plan.disabled.filter((s) => plan.reasons[s] === `feature ${name}`)
    return `${name} off (${services.join(', ')}; saves about ${saved(services)}): ${FEATURES[name]!.cost}`
  })
  const others = plan.disabled.filter((s) => !plan.reasons[s]!.startsWith('feature '))
  for (const s of others) lines.push(`${s} off (${plan.reasons[s]}; saves about ${saved([s])})`)
  return lines
}

export async function prepareStack(cfg: Config, opts: PrepareOptions): Promise<PrepareResult> {
  const stack = cfg.stackDir
  const checkout = path.join(stack, CHECKOUT_DIR)

  // 1. The version (a branch stays at the commit it was first resolved to) and its sources.
  const resolved = await resolveVersion(cfg, opts.log)
  // Mark the folder as the toolkit's (lib/core/env checkStackDir) before the checkout lands in it, and
  // only once the version is resolved, so a failed resolution leaves nothing behind.
  writeFileAtomic(
    path.join(stack, STACK_MARKER),
    'This folder is written by posthog-homelab (scripts/prepare.mts); your own changes go in docker-compose.local.yml.\n',
  )
  const sources = await fetchSources({ ...cfg, appTag: resolved.fetchRef }, opts.log)
  const { fetched, hobby, base, notices } = sources
  const version: PosthogVersion = { ...resolved.version, commit: fetched.commit }
  if (resolved.notice) notices.push(resolved.notice)
  opts.log(describeVersion(version))

  // 2. Everything generated, before anything is written (refusals and missing values end here).
  const override = buildOverride({
    hobby,
    base,
    disabled: { features: cfg.disabledFeatures, services: cfg.disabledServices },
    memoryLimits: cfg.memoryLimits,
    proxyPort: cfg.proxyPort,
    worker: {
      concurrency: cfg.workerConcurrency,
      maxTasksPerChild: cfg.celeryMaxTasksPerChild,
      maxMemoryPerChild: cfg.celeryMaxMemoryPerChild,
    },
  })
  notices.push(...override.notices)
  const files = ['docker-compose.yml', 'docker-compose.override.yml']
  if (fs.existsSync(path.join(stack, LOCAL_COMPOSE_FILE))) files.push(LOCAL_COMPOSE_FILE)
  const stackEnv = buildStackEnv(pinnedConfig(cfg, version), hobby, base, files)

  // 3. Write. writeFileAtomic leaves identical files untouched (same bytes, same mtime).
  const changed: string[] = []
  const write = (rel: string, content: string | Buffer, mode: number) => {
    const result: WriteResult = writeFileAtomic(path.join(stack, rel), content, { mode })
    if (result !== 'unchanged') changed.push(rel)
  }
  if (fetched.commit !== fetched.previousCommit) changed.push(`${CHECKOUT_DIR}/`)
  for (const [from, to] of Object.entries(COMPOSE_FILES))
    write(to, fs.readFileSync(path.join(checkout, from)), 0o644)
  for (const rel of sources.envFiles) write(rel, fs.readFileSync(path.join(checkout, rel)), 0o644)
  write('docker-compose.override.yml', override.yaml, 0o644)
  if (override.enabledServices.includes('clickhouse'))
    write(CLICKHOUSE_CONFIG_FILE, clickhouseLogsConfig(), 0o644)
  write('.env', stackEnv, 0o600)
  write(VERSION_FILE, formatVersion(version), 0o644)
  for (const [name, content] of Object.entries(COMPOSE_SCRIPTS)) write(`compose/${name}`, content, 0o755)
  for (const ctx of new Set(buildContexts(hobby).map((c) => c.path))) {
    // Build contexts are not fetched (the stack runs pulled images); an empty directory keeps
    // Compose from tripping over a missing path.
    fs.mkdirSync(path.join(checkout, ctx), { recursive: true })
  }
  fs.mkdirSync(path.join(stack, 'share'), { recursive: true })
  await prepareGeoip(stack, opts, notices, write)

  if (fetched.movedAside) notices.push(`the old checkout was moved aside to ${fetched.movedAside}`)
  return {
    changed,
    commit: fetched.commit,
    previousCommit: fetched.previousCommit,
    version,
    services: override.services,
    enabledServices: override.enabledServices,
    disabledServices: override.disabledServices,
    switchedOff: describeSwitchedOff(override),
    notices,
  }
}

async function prepareGeoip(
  stack: string,
  opts: PrepareOptions,
  notices: string[],
  write: (rel: string, content: string | Buffer, mode: number) => void,
): Promise<void> {
  const mmdb = path.join(stack, 'share', 'GeoLite2-City.mmdb')
  if (!opts.geoip) {
    if (!fs.existsSync(mmdb))
      notices.push('GeoLite2 download skipped (--no-geoip): no GeoIP lookups for events')
    return
  }
  if (fs.existsSync(mmdb)) return
  const url = process.env.GEOIP_URL || DEFAULT_GEOIP_URL
  opts.log(`downloading the GeoLite2-City database from ${url}`)
  try {
    const data = await downloadGeoip(url)
    write('share/GeoLite2-City.mmdb', data, 0o644)
    write(
      'share/GeoLite2-City.json',
      `${JSON.stringify({ date: new Date().toISOString().slice(0, 10) })}\n`,
      0o644,
    )
  } catch (e) {
    const why = (e as Error).message.replace(/^could not download \S+: /, '')
    notices.push(
      `GeoLite2 download from ${url} failed (${why}); skipped, events get no GeoIP data. Run prepare again later to retry`,
    )
  }
}
