// Black-box harness for health, doctor, schedule and watch: a scratch project (.env, a small
// STACK_DIR/docker-compose.yml), the fake docker with a scenario, local HTTP/HTTPS servers for
// /_health and the proxy's other routes (certificates made here with openssl, short validity), a
// webhook receiver, stand-ins for crontab/systemctl/launchctl, and a runner that spawns a script
// with a timeout.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import {
  dockerCalls,
  FAKES,
  HEALTHY_ROUTES,
  listenLocal,
  type ProcessResult,
  ROOT,
  type RouteAnswer,
  runProcess,
  scratchDir,
  TSX,
  writeEnvFile,
  writeScenario,
} from './common.ts'

export { ROOT }
export const FAKE_DOCKER = path.join(FAKES, 'docker')

export const SECRET = 'feedbead'.repeat(7) // 56 characters
export const SALT = 'mon1t0r5'.repeat(4) // 32 characters
export const WEBHOOK_TOKEN = 'tok3n-very-private-4242'
/** Every value above: none may ever appear in a script's output. */
export const SECRETS = [SECRET, SALT, WEBHOOK_TOKEN]

export function scratch(prefix = 'monitor-'): string {
  return scratchDir(prefix)
}

export type RunResult = ProcessResult

/** Spawns `node --import tsx <script> ...args` (or a plain node file) and collects its output. */
export function run(
  script: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number; tsx?: boolean },
): Promise<RunResult> {
  const nodeArgs = opts.tsx === false ? [script, ...args] : ['--import', TSX, script, ...args]
  return runProcess(process.execPath, nodeArgs, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    timeoutMs: opts.timeoutMs ?? 30_000,
  })
}

/**
 * `script` bundled the way schedule.mts bundles health (one file, plain node): the tests run
 * what cron runs, and a run starts in a third of the time `node --import tsx` takes.
 */
export async function bundled(script: string): Promise<string> {
  const { bundleEntry } = await import('../../lib/core/bundle.mts')
  const out = path.join(scratch('bundle-'), `${path.basename(script, '.mts')}.mjs`)
  await bundleEntry(script, out)
  return out
}

// ---------------------------------------------------------------------------------------------

export interface StackProject {
  dir: string
  /** What the fake docker's `docker info` says: a Linux engine keeping its data in `dir`. */
  dockerRootDir: string
  envFile: string
  stackDir: string
  stateFile: string
  scenarioFile: string
  dockerLog: string
  env: Record<string, string>
  scenario(s: object): void
  /** docker calls so far, compose globals dropped: `compose restart worker`. */
  calls(): string[]
}

export const SERVICES = ['db', 'redis7', 'web', 'worker', 'plugins', 'proxy', 'kafka-init']

export function makeStackProject(
  opts: { env?: Record<string, string>; services?: string[] } = {},
): StackProject {
  const dir = scratch('health-e2e-')
  const stackDir = path.join(dir, 'stack')
  fs.mkdirSync(stackDir)
  const services = opts.services ?? SERVICES
  const compose = [
    'services:',
    ...services.map((s) => `  ${s}:\n    image: example/${s}`),
    // kafka-init runs once: a service waits for it to complete, which is how Compose knows.
    '  asyncmigrationscheck:\n    image: example/app\n    deploy:\n      replicas: 0' +
      (services.includes('kafka-init')
        ? '\n    depends_on:\n      kafka-init:\n        condition: service_completed_successfully'
        : ''),
    '  livestream:\n    image: example/livestream',
    '',
  ].join('\n')
  fs.writeFileSync(path.join(stackDir, 'docker-compose.yml'), compose)
  // As prepare writes it: a switched-off service is in a profile that is never activated.
  const off = ['livestream', ...(opts.env?.DISABLED_SERVICES ?? '').split(',').filter(Boolean)]
  fs.writeFileSync(
    path.join(stackDir, 'docker-compose.override.yml'),
    `services:\n${[...new Set(off)].map((s) => `  ${s}:\n    profiles: !override [off]\n`).join('')}`,
  )
  const envFile = path.join(dir, '.env')
  const values: Record<string, string> = {
    POSTHOG_SECRET: SECRET,
    ENCRYPTION_SALT_KEYS: SALT,
    STACK_DIR: 'stack',
    ...opts.env,
  }
  writeEnvFile(envFile, values)
  const scenarioFile = path.join(dir, 'scenario.json')
  const dockerLog = path.join(dir, 'docker-calls.jsonl')
  const engine = { operatingSystem: 'Debian GNU/Linux 12 (bookworm)', dockerRootDir: dir }
  const project: StackProject = {
    dir,
    dockerRootDir: dir,
    envFile,
    stackDir,
    stateFile: path.join(dir, 'health-state.json'),
    scenarioFile,
    dockerLog,
    env: {
      DOCKER_BIN: FAKE_DOCKER,
      FAKE_DOCKER_SCENARIO: scenarioFile,
      FAKE_DOCKER_LOG: dockerLog,
      HOMELAB_ENV_FILE: envFile,
      HEALTH_STATE_FILE: path.join(dir, 'health-state.json'),
      HOME: dir,
      FRP_LOG_DIR: dir, // no frpc.log here: doctor reads only the logs a test gives it
      // This machine's free disk is not the test's business, except where a test says so.
      HEALTH_DISK_WARNING: '0%,0',
      HEALTH_DISK_CRITICAL: '0%,0',
    },
    scenario(s: object) {
      writeScenario(scenarioFile, { ...engine, ...s })
    },
    calls() {
      return dockerCalls(dockerLog).map((argv) => argv.join(' '))
    },
  }
  project.scenario({
    services: Object.fromEntries(services.map((s) => [s, s === 'kafka-init' ? { state: 'exited' } : {}])),
  })
  return project
}

// ---------------------------------------------------------------------------------------------
// HTTP(S) stand-ins

export type HealthMode = 'ok' | 'migrating' | 'hang' | 'error'

/** How the proxy answers a path: a status code, or never. */

export interface HealthServer {
  url: string
  /** The proxy's base URL (http://127.0.0.1:PORT). */
  origin: string
  port: number
  mode: HealthMode
  /** Per path (query left out); paths not listed answer 404. Tests change entries as they need. */
  routes: Record<string, RouteAnswer>
  /** `METHOD path` of every request other than /_health. */
  requests: string[]
  close(): Promise<void>
}

function healthHandler(server: Pick<HealthServer, 'mode' | 'routes' | 'requests'>) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (server.mode === 'hang') return // never answers
    const urlPath = (req.url ?? '/').split('?')[0]!
    if (urlPath !== '/_health') {
      server.requests.push(`${req.method} ${urlPath}`)
      const answer = server.routes[urlPath] ?? 404
      if (answer === 'hang') return
      req.resume()
      const headers = answer === 302 ? { location: '/login?next=/' } : { 'content-type': 'application/json' }
      res.writeHead(answer, headers).end(answer === 401 ? '{"type":"authentication_error"}' : '')
      return
    }
    if (server.mode === 'ok') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
    else if (server.mode === 'migrating') res.writeHead(503).end('Migrations are not up to date')
    else res.writeHead(500).end('Internal Server Error')
  }
}

async function listen(
  server: http.Server,
  state: Pick<HealthServer, 'mode' | 'routes' | 'requests'>,
  scheme: string,
): Promise<HealthServer> {
  const { port, close } = await listenLocal(server)
  const host = scheme === 'https' ? 'localhost' : '127.0.0.1'
  const origin = `${scheme}://${host}:${port}`
  return Object.assign(state, { url: `${origin}/_health`, origin, port, close }) as HealthServer
}

function serverState(mode: HealthMode) {
  return { mode, routes: { ...HEALTHY_ROUTES }, requests: [] as string[] }
}

export function startHealthServer(mode: HealthMode = 'ok'): Promise<HealthServer> {
  const state = serverState(mode)
  return listen(http.createServer(healthHandler(state)), state, 'http')
}

export function startHttpsHealthServer(cert: LeafCert, mode: HealthMode = 'ok'): Promise<HealthServer> {
  const state = serverState(mode)
  const server = https.createServer({ key: cert.key, cert: cert.cert }, healthHandler(state))
  return listen(server as unknown as http.Server, state, 'https')
}

export interface Webhook {
  url: string
  received: { headers: http.IncomingHttpHeaders; body: string; url: string }[]
  close(): Promise<void>
}

/** Records every POST; its URL carries a token (which must never be printed). `hang`: never answers. */
export async function startWebhook(opts: { hang?: boolean } = {}): Promise<Webhook> {
  const received: Webhook['received'] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => {
      received.push({ headers: req.headers, body, url: req.url ?? '' })
      if (!opts.hang) res.writeHead(200).end('ok')
    })
  })
  const { port, close } = await listenLocal(server)
  return { url: `http://127.0.0.1:${port}/hook?auth=${WEBHOOK_TOKEN}`, received, close }
}

// ---------------------------------------------------------------------------------------------
// Certificates: a test CA and leaf certificates for localhost with a chosen validity.

export interface TestCa {
  dir: string
  caFile: string
  caKey: string
}

export interface LeafCert {
  key: string
  cert: string
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'ignore', timeout: 30_000 })
}

/** `openssl req` arguments for a new unencrypted P-256 key written to `keyFile`. */
function newEcKey(keyFile: string): string[] {
  return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile]
}

export function makeCa(dir = scratch('ca-')): TestCa {
  openssl(
    [
      'req',
      '-x509',
      ...newEcKey('ca.key'),
      '-out',
      'ca.pem',
      '-days',
      '60',
      '-subj',
      '/CN=posthog-homelab test CA',
    ],
    dir,
  )
  return { dir, caFile: path.join(dir, 'ca.pem'), caKey: path.join(dir, 'ca.key') }
}

/** A certificate for localhost and 127.0.0.1, valid for `days` days from now. */
export function makeLeaf(ca: TestCa, days: number): LeafCert {
  const name = `leaf-${days}`
  fs.writeFileSync(
    path.join(ca.dir, `${name}.ext`),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  )
  openssl(['req', ...newEcKey(`${name}.key`), '-out', `${name}.csr`, '-subj', '/CN=localhost'], ca.dir)
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      String(days),
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ],
    ca.dir,
  )
  return {
    key: fs.readFileSync(path.join(ca.dir, `${name}.key`), 'utf8'),
    cert: fs.readFileSync(path.join(ca.dir, `${name}.pem`), 'utf8'),
  }
}

// ---------------------------------------------------------------------------------------------
// Stand-ins for system tools, first on PATH

/** A bin dir with `crontab` (stored in $CRONTAB_FILE), `systemctl` and `launchctl` stand-ins. */
export function makeToolsDir(): { bin: string; crontabFile: string; callsFile: string; path: string } {
  const bin = scratch('tools-')
  const crontabFile = path.join(bin, 'crontab.txt')
  const callsFile = path.join(bin, 'calls.log')
  const write = (name: string, body: string) =>
    fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 })
  write(
    'crontab',
    [
      `echo "crontab $*" >> ${JSON.stringify(callsFile)}`,
      'case "$1" in',
      `  -l) if [ -f ${JSON.stringify(crontabFile)} ]; then cat ${JSON.stringify(crontabFile)}; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;`,
      `  -) cat > ${JSON.stringify(crontabFile)} ;;`,
      '  *) echo "usage: crontab [-l | -]" >&2; exit 2 ;;',
      'esac',
    ].join('\n'),
  )
  // systemctl is-active UNIT: "active" (exit 0) unless $INACTIVE_UNITS (comma list) names it.
  write(
    'systemctl',
    [
      `echo "systemctl $*" >> ${JSON.stringify(callsFile)}`,
      '[ "$1" = is-active ] || exit 1',
      'if [[ ",$INACTIVE_UNITS," == *",$2,"* ]]; then echo inactive; exit 3; fi',
      'echo active',
    ].join('\n'),
  )
  // launchctl: remembers bootstrapped labels in a file; print succeeds for those.
  write(
    'launchctl',
    [
      `echo "launchctl $*" >> ${JSON.stringify(callsFile)}`,
      `loaded=${JSON.stringify(path.join(bin, 'launchd-loaded'))}`,
      'case "$1" in',
      '  print) grep -qxF "$2" "$loaded" 2>/dev/null || { echo "Could not find service" >&2; exit 113; } ;;',
      '  bootstrap) label=$(basename "$3" .plist); echo "$2/$label" >> "$loaded" ;;',
      '  bootout) grep -vxF "$2" "$loaded" > "$loaded.tmp" 2>/dev/null; mv "$loaded.tmp" "$loaded" ;;',
      'esac',
    ].join('\n'),
  )
  return { bin, crontabFile, callsFile, path: `${bin}:${process.env.PATH}` }
}
