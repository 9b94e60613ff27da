// A scratch project for the backup / restore / upgrade black-box tests: a .env with known
// secrets, STACK_DIR and BACKUP_DIR in a temp dir, a fake-docker scenario, and a runner that
// spawns a script with the fake docker first on PATH.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {
  dockerCalls,
  expectNoSecrets,
  FAKES,
  fakeDockerStateFile,
  HEALTHY_ROUTES,
  type Listening,
  listenLocal,
  type ProcessResult,
  SCRIPT_TIMEOUT_MS,
  scratchDir,
  startProcess,
  writeEnvFile,
  writeScenario,
} from './common.ts'

export const SECRET = 'f00dfeed'.repeat(7) // 56 hex characters
export const SALT = 'a1b2c3d4'.repeat(4) // 32 characters

export interface Project {
  dir: string
  envFile: string
  stackDir: string
  backupDir: string
  scenarioFile: string
  logFile: string
  scenario: Record<string, unknown>
  writeScenario(s: Record<string, unknown>): void
  /** The fake-docker calls so far, compose global flags dropped, e.g. "compose up -d web". */
  calls(): string[]
}

export function makeProject(env: Record<string, string> = {}): Project {
  const dir = scratchDir('homelab-e2e-')
  const stackDir = path.join(dir, 'stack')
  const backupDir = path.join(dir, 'backups')
  fs.mkdirSync(stackDir)
  const envFile = path.join(dir, '.env')
  const values: Record<string, string> = {
    POSTHOG_SECRET: SECRET,
    ENCRYPTION_SALT_KEYS: SALT,
    STACK_DIR: stackDir,
    BACKUP_DIR: backupDir,
    POSTHOG_APP_TAG: 'v1',
    ...env,
  }
  writeEnvFile(envFile, values, 'test project')
  const scenarioFile = path.join(dir, 'scenario.json')
  const logFile = path.join(dir, 'docker.log')
  const project: Project = {
    dir,
    envFile,
    stackDir,
    backupDir,
    scenarioFile,
    logFile,
    scenario: {},
    writeScenario(s) {
      project.scenario = s
      writeScenario(scenarioFile, s)
    },
    calls() {
      return dockerCalls(logFile).map((argv) => argv.join(' '))
    },
  }
  project.writeScenario({})
  return project
}

export type RunResult = ProcessResult

export interface RunOptions {
  env?: Record<string, string>
  input?: string
  timeoutMs?: number
  /** Called with the child's pid once it runs (the crash test kills it). */
  onSpawn?: (pid: number) => void
}

/** Spawns `node --import tsx <script>` from the project root with the fake docker first on PATH. */
export function runScript(
  project: Project,
  script: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const child = startProcess('node', ['--import', 'tsx', script, ...args], {
    cwd: process.cwd(),
    detached: true, // own process group: the crash test kills the whole group
    env: {
      ...process.env,
      PATH: `${FAKES}:${process.env.PATH}`,
      DOCKER_BIN: path.join(FAKES, 'docker'),
      FAKE_DOCKER_SCENARIO: project.scenarioFile,
      FAKE_DOCKER_LOG: project.logFile,
      HOMELAB_ENV_FILE: project.envFile,
      // Every service must stay up this long after a start: a moment is enough for the fake docker.
      HOMELAB_SETTLE: '300ms',
      ...opts.env,
    },
    input: opts.input ?? '',
    timeoutMs: opts.timeoutMs ?? SCRIPT_TIMEOUT_MS,
  })
  opts.onSpawn?.(child.pid)
  return child.done
}

/** Fails the test when a secret value of the project's .env appears in the output. */
export function assertNoSecrets(res: RunResult): void {
  expectNoSecrets(res, [SECRET, SALT])
}

/**
 * A stand-in for PostHog's /_health behind Caddy on 127.0.0.1: answers what `respond()` returns
 * at the time of each request (the test decides from the fake docker state, a file, ...); the
 * capture path's routes answer as a healthy stack's do.
 */
export async function healthServer(respond: () => { status: number; body: string }): Promise<Listening> {
  const server = http.createServer((req, res) => {
    const route = HEALTHY_ROUTES[(req.url ?? '/').split('?')[0]!]
    const { status, body } =
      req.url === '/_health' ? respond() : { status: typeof route === 'number' ? route : 404, body: '' }
    res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' })
    res.end(body)
  })
  return listenLocal(server)
}

/** The fake docker's current service states (what `compose up`/`stop` left). */
export function serviceStates(project: Project): Record<string, { state?: string; image?: string }> {
  const file = fakeDockerStateFile(project.scenarioFile)
  const fromScenario = (project.scenario.services ?? {}) as Record<string, { state?: string }>
  if (!fs.existsSync(file)) return fromScenario
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { services: Record<string, { state?: string }> })
    .services
}
