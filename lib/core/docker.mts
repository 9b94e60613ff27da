// Thin wrappers around the docker CLI: argument arrays run by the command runner (no shell).
import fs from 'node:fs'
import path from 'node:path'
import { type CommandResult, type Duration, type RunOptions, run } from './exec.mts'

/** Fixed Compose project name, so volume names do not follow the install directory. */
export const PROJECT_NAME = 'posthog'

export const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.override.yml', 'docker-compose.local.yml']

export function dockerBin(): string {
  return process.env.DOCKER_BIN || 'docker'
}

/** `-f` arguments for the stack: upstream file, generated override, and the user's local file if present. */
export function composeFileArgs(stackDir: string): string[] {
  const files = COMPOSE_FILES.filter((f, i) => i < 2 || fs.existsSync(path.join(stackDir, f)))
  return files.flatMap((f) => ['-f', path.join(stackDir, f)])
}

/** Everything before a compose subcommand: project directory, name, env file and files. */
export function composePrefix(stackDir: string): string[] {
  const envFile = path.join(stackDir, '.env')
  return [
    'compose',
    '--project-directory',
    stackDir,
    '-p',
    PROJECT_NAME,
    ...(fs.existsSync(envFile) ? ['--env-file', envFile] : []),
    ...composeFileArgs(stackDir),
  ]
}

export function docker(args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  return run(dockerBin(), args, opts)
}

export function compose(stackDir: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  return docker([...composePrefix(stackDir), ...args], opts)
}

/** One line of `docker compose ps --format json` (Compose >= 2.21 prints one object per line). */
export interface ComposePsEntry {
  Name: string
  Service: string
  State: string
  Status: string
  Health: string
  ExitCode: number
}

export function parseComposePs(stdout: string): ComposePsEntry[] {
  const text = stdout.trim()
  if (!text) return []
  // Compose < 2.21 printed one JSON array; newer versions print one object per line.
  if (text.startsWith('[')) return JSON.parse(text) as ComposePsEntry[]
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ComposePsEntry)
}

export async function composePs(stackDir: string, opts: RunOptions = {}): Promise<ComposePsEntry[]> {
  const out = await compose(stackDir, ['ps', '--all', '--format', 'json'], { timeout: '30s', ...opts })
  return parseComposePs(out.stdout)
}

/** The project's volumes as Docker knows them (they outlive its containers): one name a line. */
export async function projectVolumes(): Promise<string[]> {
  const out = await docker(
    ['volume', 'ls', '--quiet', '--filter', `label=com.docker.compose.project=${PROJECT_NAME}`],
    { timeout: '30s' },
  )
  return out.stdout.split('\n').filter(Boolean).sort()
}

/** A service of the merged model `docker compose config --format json` prints (the fields read here). */
export interface ModelService {
  deploy?: { replicas?: number | null } | null
  depends_on?: Record<string, { condition?: string }> | null
}

export interface StackServices {
  /** Services Compose runs: those the active profiles enable, less `deploy.replicas: 0`. */
  expected: string[]
  /** Services others wait for to complete (kafka-init): exited 0 is their success. */
  oneShot: string[]
}

/** Which services should run, and which of them run once, from the merged model. */
export function servicesFromModel(services: Record<string, ModelService>): StackServices {
  const expected = Object.keys(services)
    .filter((s) => services[s]?.deploy?.replicas !== 0)
    .sort()
  const oneShot = new Set<string>()
  for (const svc of Object.values(services))
    for (const [dep, d] of Object.entries(svc.depends_on ?? {}))
      if (d?.condition === 'service_completed_successfully') oneShot.add(dep)
  return { expected, oneShot: expected.filter((s) => oneShot.has(s)) }
}

/** The services of the stack as Compose merges its files (`docker compose config --format json`). */
export async function stackServices(stackDir: string, timeout: Duration = '60s'): Promise<StackServices> {
  const out = await compose(stackDir, ['config', '--format', 'json'], { timeout })
  const model = JSON.parse(out.stdout) as { services?: Record<string, ModelService> }
  return servicesFromModel(model.services ?? {})
}
