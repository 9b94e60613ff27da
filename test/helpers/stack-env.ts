// Black-box harness for up/down: a scratch project directory (its own .env.example, optional
// .env, STACK_DIR inside), the fake docker first on PATH with a scenario, a local HTTP server
// standing in for Caddy (/_health, and the capture, flags, replay and app routes), and a runner
// that spawns a script with a timeout.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {
  dockerCalls,
  FAKES,
  HEALTHY_ROUTES,
  listenLocal,
  type ProcessResult,
  ROOT,
  type RouteAnswer,
  SCRIPT_TIMEOUT_MS,
  type StartedProcess,
  scratchDir,
  secretsFound,
  startProcess,
  TSX,
  writeEnvFile,
  writeScenario,
} from './common.ts'

export const SECRET = 'c0ffee12'.repeat(7) // 56 hex characters
export const SALT = '5a1t5a1t'.repeat(4) // 32 characters

export interface Project {
  dir: string
  envFile: string
  stackDir: string
  scenarioFile: string
  logFile: string
  /** Environment for the script: fake docker on PATH, scenario, log. */
  env: Record<string, string>
  scenario(s: object): void
  /** Every docker call so far, normalised like the fake does (compose globals dropped). */
  calls(): string[][]
  cleanup(): void
}

export function makeProject(opts: { withEnv?: Record<string, string> | false } = {}): Project {
  const dir = scratchDir('stack-e2e-')
  fs.copyFileSync(path.join(ROOT, '.env.example'), path.join(dir, '.env.example'))
  const envFile = path.join(dir, '.env')
  if (opts.withEnv !== false) {
    const values = { POSTHOG_SECRET: SECRET, ENCRYPTION_SALT_KEYS: SALT, ...(opts.withEnv ?? {}) }
    writeEnvFile(envFile, values)
  }
  const scenarioFile = path.join(dir, 'scenario.json')
  const logFile = path.join(dir, 'docker-calls.jsonl')
  writeScenario(scenarioFile, {})
  const project: Project = {
    dir,
    envFile,
    stackDir: path.join(dir, 'stack'),
    scenarioFile,
    logFile,
    env: {
      PATH: `${FAKES}:${process.env.PATH}`,
      FAKE_DOCKER_SCENARIO: scenarioFile,
      FAKE_DOCKER_LOG: logFile,
    },
    scenario(s) {
      writeScenario(scenarioFile, s)
    },
    calls() {
      return dockerCalls(logFile)
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  return project
}

export type RunResult = Pick<ProcessResult, 'code' | 'stdout' | 'stderr'>
export type Running = StartedProcess

/** Spawns `node --import tsx scripts/<name>.mts` in the project directory; a failing script is no error. */
export function startScript(
  name: string,
  args: string[],
  project: Project,
  extraEnv: Record<string, string> = {},
  timeoutMs = SCRIPT_TIMEOUT_MS,
): Running {
  return startProcess(
    process.execPath,
    ['--import', TSX, path.join(ROOT, 'scripts', `${name}.mts`), ...args],
    {
      cwd: project.dir,
      env: { HOME: process.env.HOME ?? '/root', ...project.env, ...extraEnv },
      timeoutMs,
    },
  )
}

export function runScript(
  name: string,
  args: string[],
  project: Project,
  extraEnv: Record<string, string> = {},
  timeoutMs = SCRIPT_TIMEOUT_MS,
): Promise<RunResult> {
  return startScript(name, args, project, extraEnv, timeoutMs).done
}

/** Fails when any secret value of the project's .env (or the fixed ones) shows in the output. */
export function secretsIn(res: RunResult, project: Project): string[] {
  const values = [SECRET, SALT]
  if (fs.existsSync(project.envFile)) {
    const text = fs.readFileSync(project.envFile, 'utf8')
    for (const key of ['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS']) {
      const m = new RegExp(`^${key}=(.*)$`, 'm').exec(text)
      if (m?.[1] && m[1].length >= 6) values.push(m[1])
    }
  }
  return secretsFound(res, values)
}

// ---- a stand-in for Caddy's /_health -----------------------------------------------------------

export type HealthMode = (ctx: { webStarted: boolean; allStarted: boolean; sinceWeb: number }) => {
  status: number
  body: string
}

/**
 * PostHog's usual first start: 502 until web runs, a few 503 while it migrates, then 200 ok once
 * everything runs. In between (web past its migrations, the rest not started yet) it answers
 * `200 web only`: past the migrations but not healthy, so the two waits of the ordered start can
 * be told apart: a web-alone wait that waited for 200 ok instead would never end.
 */
export const usualStart: HealthMode = ({ webStarted, allStarted, sinceWeb }) => {
  if (!webStarted) return { status: 502, body: '' }
  if (sinceWeb < 3) return { status: 503, body: 'Migrations are not up to date' }
  if (!allStarted) return { status: 200, body: 'web only' }
  return { status: 200, body: 'ok' }
}

export interface HealthServer {
  port: number
  /** Time of the first answer past migrations (not 502/503). */
  firstReadyAt(): number | undefined
  /** Whether `up -d` of everything had run before web's first answer past migrations. */
  allStartedBeforeReady(): boolean
  /**
   * The proxy's other routes (lib/stack/routes.mts probes them): status per path, query left out;
   * 'hang' never answers; paths not listed answer 404. Tests change entries as they need.
   */
  routes: Record<string, RouteAnswer>
  /** `METHOD path` of every request other than /_health. */
  requests: string[]
  close(): Promise<void>
}

/**
 * Stands in for Caddy: answers /_health according to `mode`, reading the fake docker's call log
 * to know what runs, and the other routes from `routes` (HEALTHY_ROUTES unless given).
 */
export async function healthServer(
  project: Project,
  mode: HealthMode,
  routes: Record<string, RouteAnswer> = { ...HEALTHY_ROUTES },
): Promise<HealthServer> {
  let sinceWeb = 0
  let readyAt: number | undefined
  let allBeforeReady = false
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    const urlPath = (req.url ?? '/').split('?')[0]!
    if (urlPath !== '/_health') {
      requests.push(`${req.method} ${urlPath}`)
      const status = routes[urlPath] ?? 404
      if (status === 'hang') return
      req.resume()
      res.writeHead(status, status === 302 ? { location: '/login?next=/' } : {}).end()
      return
    }
    const calls = project.calls().map((c) => c.join(' '))
    const webStarted = calls.some((c) => /^compose up -d .*\bweb\b/.test(c))
    const allStarted = calls.some((c) => c === 'compose up -d --no-build')
    const answer = mode({ webStarted, allStarted, sinceWeb })
    if (webStarted) sinceWeb++
    if (answer.status < 500 && readyAt === undefined) {
      readyAt = Date.now()
      allBeforeReady = allStarted
    }
    res.writeHead(answer.status, { 'content-type': 'text/plain' })
    res.end(answer.body)
  })
  const { port, close } = await listenLocal(server)
  return {
    port,
    firstReadyAt: () => readyAt,
    allStartedBeforeReady: () => allBeforeReady,
    routes,
    requests,
    close,
  }
}

/**
 * Runs a script on a pseudo-terminal (util-linux `script`), so it sees a TTY; when `prompt`
 * appears in its output, types `answer`. stdout and stderr arrive merged, as on a terminal.
 */
export function runOnTty(
  name: string,
  args: string[],
  project: Project,
  opts: { prompt?: string; answer?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const cmd = [process.execPath, '--import', TSX, path.join(ROOT, 'scripts', `${name}.mts`), ...args].join(
    ' ',
  )
  const child = spawn('script', ['-qefc', cmd, '/dev/null'], {
    cwd: project.dir,
    env: { HOME: process.env.HOME ?? '/root', TERM: 'dumb', ...project.env },
  })
  let out = ''
  let typed = false
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    if (opts.prompt && !typed && out.includes(opts.prompt)) {
      typed = true
      child.stdin.write(`${opts.answer ?? ''}\n`)
    }
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? SCRIPT_TIMEOUT_MS)
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: out, stderr: '' })
    }),
  )
}
