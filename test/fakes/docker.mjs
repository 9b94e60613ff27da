// Scenario-driven stand-in for the `docker` CLI (the one thing faked in this project's tests).
//
// Environment:
//   FAKE_DOCKER_SCENARIO  JSON scenario file (below); missing = a healthy daemon with no services
//   FAKE_DOCKER_LOG       every call is appended here as one JSON line {argv, cwd, time}
//   FAKE_DOCKER_STATE     where mutable state (service states, rule counters) is kept;
//                         default: "<scenario>.state.json"
//   FAKE_COMPOSE_CONFIG   the real Compose loader (../shared/tools/.../compose-config); without it a
//                         rough merge of the -f files stands in (see fallbackModel). When set,
//                         every `compose` call first loads the project with it, as docker compose
//                         does: an invalid project fails the call with the loader's reason, its
//                         warnings (e.g. an unset variable) go to stderr, `compose config` is the
//                         loader's answer, and `up`/`pull`/`create` without a service list act on
//                         the services the merged model enables (a service in an inactive profile
//                         is neither pulled nor created)
//
// Scenario (all keys optional):
//   daemon: false                 -> `docker info` fails like a stopped daemon
//   composeVersion: "2.29.7" | null (null: no compose plugin)
//   memTotal (bytes), ncpu, dockerRootDir, serverVersion
//   services: { name: { state, health, exitCode, restartCount, oomKilled, image, onStart } }
//                                onStart: what `up`/`start`/`restart` makes of it instead of running,
//                                e.g. { state: 'restarting', exitCode: 1, restartCount: 5 } (a crash loop)
//   volumes: ["postgres-data", ...]  the project's volumes; default: two, once a service ran or was created
//   startOnUp: true               -> `compose up -d [svc...]` marks those services running/healthy
//   logs: { service: ["line", ...] }
//   pgForward: { host, port, binDir }  -> `compose exec -T db pg_dump|pg_restore|psql|createdb|pg_isready`
//                                run for real; a fresh db volume (`compose up db` after `volume rm`)
//                                empties the server as initdb would (only `postgres` and `posthog` left)
//   volumes: ["postgres-data", ...]  -> the project's volumes (`posthog_<name>`); `volume create|inspect|rm`
//                                and `run --rm -v A:/from:ro -v B:/to IMAGE -c <copy script>` act on
//                                them, each volume's content being a token the copies carry
//   stats: { service: { mem: "1.2GiB", limit: "2GiB" } }
//   diskUsage: { images: [{ repository, tag, size }], volumes: [{ name, size, links }], buildCache }
//                                 sizes in bytes, for `docker system df` (default: one small image
//                                 per service, the scenario's volumes)
//   manifests: ["posthog/posthog:<tag>", ...]  -> the images `manifest inspect` finds in the
//                                registry (the rest: "no such manifest"); missing = every image
//   rules: [ { match: "<regex on the normalised argv>", stdout, stderr, exitCode, times, delayMs,
//              setState: { service: {...} }, setLogs: { service: ["line", ...] } } ]
//                                first matching rule with times left wins; setLogs replaces the
//                                service's log lines from then on (e.g. clean logs after a fix)
//
// Normalised argv: compose's global flags (-f, -p, --project-directory, --env-file, ...) are
// dropped, so `docker compose -p posthog -f a.yml up -d web` is matched as "compose up -d web".
import fs from 'node:fs'

const argv = process.argv.slice(2)
const scenarioFile = process.env.FAKE_DOCKER_SCENARIO
const scenario = scenarioFile && fs.existsSync(scenarioFile) ? JSON.parse(fs.readFileSync(scenarioFile, 'utf8')) : {}
const stateFile = process.env.FAKE_DOCKER_STATE || (scenarioFile ? `${scenarioFile}.state.json` : undefined)
const PROJECT = 'posthog'

if (process.env.FAKE_DOCKER_LOG) {
  fs.appendFileSync(process.env.FAKE_DOCKER_LOG, `${JSON.stringify({ argv, cwd: process.cwd(), time: Date.now() })}\n`)
}

function loadState() {
  const fresh = { services: structuredClone(scenario.services ?? {}), ruleUses: {} }
  if (!stateFile || !fs.existsSync(stateFile)) return fresh
  return { ...fresh, ...JSON.parse(fs.readFileSync(stateFile, 'utf8')) }
}
const state = loadState()
// Written whole and renamed into place: calls run side by side (the health checks do), and one
// must never read another's half-written state.
function saveState() {
  if (!stateFile) return
  const tmp = `${stateFile}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(state))
  fs.renameSync(tmp, stateFile)
}

function out(text) {
  if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}
function fail(text, code = 1) {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
  process.exit(code)
}

// ---- normalise compose argv -----------------------------------------------------------------
const GLOBAL_WITH_VALUE = new Set(['-f', '--file', '-p', '--project-name', '--project-directory', '--env-file', '--profile', '--ansi', '--progress', '--parallel'])
function normalise(args) {
  if (args[0] !== 'compose') return args
  const rest = []
  let i = 1
  while (i < args.length) {
    const a = args[i]
    if (GLOBAL_WITH_VALUE.has(a)) i += 2
    else if ([...GLOBAL_WITH_VALUE].some((g) => a.startsWith(`${g}=`))) i += 1
    else break
  }
  rest.push(...args.slice(i))
  return ['compose', ...rest]
}
const norm = normalise(argv)
const joined = norm.join(' ')

// ---- scenario rules first -------------------------------------------------------------------
for (const [index, rule] of (scenario.rules ?? []).entries()) {
  if (!new RegExp(rule.match).test(joined)) continue
  const used = state.ruleUses[index] ?? 0
  if (rule.times !== undefined && used >= rule.times) continue
  state.ruleUses[index] = used + 1
  for (const [svc, patch] of Object.entries(rule.setState ?? {})) state.services[svc] = { ...(state.services[svc] ?? {}), ...patch }
  if (rule.setLogs) state.logs = { ...(state.logs ?? {}), ...rule.setLogs }
  saveState()
  if (rule.delayMs) await new Promise((r) => setTimeout(r, rule.delayMs))
  if (rule.stdout) out(rule.stdout)
  if (rule.stderr) process.stderr.write(rule.stderr.endsWith('\n') ? rule.stderr : `${rule.stderr}\n`)
  process.exit(rule.exitCode ?? 0)
}

const DAEMON_DOWN = 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?'
function needDaemon() {
  if (scenario.daemon === false) fail(DAEMON_DOWN)
}

function serviceNames() {
  return Object.keys(state.services)
}
function svc(name) {
  return { state: 'running', health: '', exitCode: 0, restartCount: 0, oomKilled: false, ...(state.services[name] ?? {}) }
}
function containerName(name) {
  return `${PROJECT}-${name}-1`
}

function statusText(s) {
  if (s.state === 'running') return `Up 5 minutes${s.health ? ` (${s.health})` : ''}`
  if (s.state === 'restarting') return `Restarting (${s.exitCode}) 3 seconds ago`
  if (s.state === 'exited') return `Exited (${s.exitCode}) 2 minutes ago`
  return s.state
}

// `docker compose ps --format json` (Compose >= 2.21: one JSON object per line), e.g.
// {"Command":"\"/compose/start\"","CreatedAt":"2024-05-01 10:00:00 +0000 UTC","ExitCode":0,"Health":"",
//  "ID":"3f2a...","Image":"posthog/posthog:latest","Labels":"com.docker.compose.project=posthog,...",
//  "LocalVolumes":"0","Mounts":"","Name":"posthog-web-1","Names":"posthog-web-1","Networks":"posthog_default",
//  "Ports":"","Project":"posthog","Publishers":[],"RunningFor":"5 minutes ago","Service":"web","Size":"0B",
//  "State":"running","Status":"Up 5 minutes"}
function psLine(name) {
  const s = svc(name)
  return JSON.stringify({
    Command: '"/docker-entrypoint.sh"',
    CreatedAt: '2026-11-25 10:00:00 +0000 UTC',
    ExitCode: s.exitCode,
    Health: s.health ?? '',
    ID: Buffer.from(name).toString('hex').padEnd(64, '0').slice(0, 64),
    Image: s.image ?? `${name}:latest`,
    Labels: `com.docker.compose.project=${PROJECT},com.docker.compose.service=${name}`,
    LocalVolumes: '0',
    Mounts: '',
    Name: containerName(name),
    Names: containerName(name),
    Networks: `${PROJECT}_default`,
    Ports: '',
    Project: PROJECT,
    Publishers: [],
    RunningFor: '5 minutes ago',
    Service: name,
    Size: '0B',
    State: s.state,
    Status: statusText(s),
  })
}

// `docker inspect <container>`: a JSON array, abridged to the fields the toolkit reads.
function inspectOne(container) {
  const name = serviceNames().find((n) => containerName(n) === container || n === container)
  if (!name) return undefined
  const s = svc(name)
  return {
    Id: Buffer.from(name).toString('hex').padEnd(64, '0').slice(0, 64),
    Name: `/${containerName(name)}`,
    RestartCount: s.restartCount,
    State: {
      Status: s.state,
      Running: s.state === 'running',
      Paused: false,
      Restarting: s.state === 'restarting',
      OOMKilled: !!s.oomKilled,
      Dead: false,
      Pid: s.state === 'running' ? 4242 : 0,
      ExitCode: s.exitCode,
      Error: '',
      StartedAt: '2026-11-25T10:00:00.000000000Z',
      FinishedAt: '0001-01-01T00:00:00Z',
      ...(s.health ? { Health: { Status: s.health, FailingStreak: s.health === 'unhealthy' ? 3 : 0, Log: [] } } : {}),
    },
    Config: { Image: s.image ?? `${name}:latest`, Labels: { 'com.docker.compose.project': PROJECT, 'com.docker.compose.service': name } },
  }
}

function selectedServices(args) {
  const names = args.filter((a) => !a.startsWith('-'))
  return names.length ? names : (modelServices ?? serviceNames())
}

// `compose exec -T db pg_dump|pg_restore|psql ...` runs the real PostgreSQL client against the
// test's own server (scenario `pgForward: { host, port, binDir }`; host may be a socket dir),
// with stdin and stdout passed straight through, as `exec -T` does.
async function forwardToPostgres([bin, ...rawArgs]) {
  if (!['pg_dump', 'pg_restore', 'psql', 'pg_isready', 'createdb'].includes(bin)) return
  // `-h 127.0.0.1` inside the container is its own server: here, the test server's socket.
  const binArgs = rawArgs.filter((a, i) => !(a === '-h' && rawArgs[i + 1] === '127.0.0.1') && !(a === '127.0.0.1' && rawArgs[i - 1] === '-h'))
  const { spawn } = await import('node:child_process')
  const { host, port, binDir } = scenario.pgForward
  const child = spawn(binDir ? `${binDir}/${bin}` : bin, binArgs, {
    stdio: 'inherit',
    env: { ...process.env, PGHOST: String(host), PGPORT: String(port) },
  })
  const code = await new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`OCI runtime exec failed: ${e.message}\n`)
      resolve(126)
    })
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 137 : 1)))
  })
  process.exit(code)
}

// The compose-level flags of the original argv (project, files, env file, profiles) for the loader.
function composeGlobals(args) {
  const globals = []
  let i = 1
  while (i < args.length) {
    const a = args[i]
    if (GLOBAL_WITH_VALUE.has(a)) {
      if (['-f', '--file', '-p', '--project-name', '--project-directory', '--env-file', '--profile'].includes(a))
        globals.push(a, args[i + 1])
      i += 2
    } else if ([...GLOBAL_WITH_VALUE].some((g) => a.startsWith(`${g}=`))) {
      globals.push(a)
      i += 1
    } else break
  }
  return globals
}

async function realLoader(extra) {
  const { spawnSync } = await import('node:child_process')
  return spawnSync(process.env.FAKE_COMPOSE_CONFIG, [...composeGlobals(argv), ...extra], {
    encoding: 'utf8',
    cwd: process.cwd(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    timeout: 30_000,
  })
}

// Without the real loader (a plain clone has no ../shared), a rough merge of the -f files stands in
// for compose's model: each file's services merged key by key over the last (a key a later file
// sets replaces the earlier one, which is what the generated override's !override asks for),
// `extends` resolved with depends_on merged, services in a profile that is not active left out.
async function fallbackModel() {
  const { parseDocument } = await import('yaml')
  const tags = ['!override', '!reset'].flatMap((tag) => ['seq', 'map'].map((collection) => ({ tag, collection, resolve: (v) => v })))
  const read = (file) => {
    const doc = parseDocument(fs.readFileSync(file, 'utf8'), { merge: true, customTags: tags })
    return doc.toJS({ maxAliasCount: -1 })?.services ?? {}
  }
  const deps = (v) =>
    Array.isArray(v) ? Object.fromEntries(v.map((d) => [d, { condition: 'service_started' }])) : Object.fromEntries(Object.entries(v ?? {}).map(([d, c]) => [d, { condition: c?.condition ?? 'service_started' }]))
  const resolve = (def, file, seen = 0) => {
    const ext = typeof def?.extends === 'string' ? { service: def.extends } : def?.extends
    if (!ext || seen > 5) return { ...def, depends_on: deps(def?.depends_on) }
    const from = ext.file ? `${file.replace(/[^/]*$/, '')}${ext.file}` : file
    const parent = resolve(read(from)[ext.service] ?? {}, from, seen + 1)
    return { ...parent, ...def, depends_on: { ...parent.depends_on, ...deps(def.depends_on) } }
  }
  const files = []
  for (let i = 1; i < argv.length && argv[i] !== norm[1]; i++) if (argv[i] === '-f' || argv[i] === '--file') files.push(argv[++i])
  const profiles = argv.flatMap((a, i) => (argv[i - 1] === '--profile' ? [a] : []))
  const services = {}
  for (const file of files) {
    if (!fs.existsSync(file)) return undefined
    for (const [name, def] of Object.entries(read(file))) {
      const own = resolve(def ?? {}, file)
      services[name] = { ...(services[name] ?? {}), ...own, ...(def?.depends_on ? { depends_on: deps(def.depends_on) } : {}) }
    }
  }
  for (const [name, def] of Object.entries(services))
    if (def.profiles?.length && !def.profiles.some((p) => profiles.includes(p))) delete services[name]
  return files.length ? services : undefined
}

// docker compose loads (and validates) the project before every subcommand but `version`.
let modelServices
let model
const oneShots = new Set()
// The project files and env file as they are now: the loaded model is kept in the state file
// until one of them changes, so a burst of compose calls loads it once (as cheap as a fake must be).
function projectKey() {
  const files = argv.flatMap((a, i) => (['-f', '--file', '--env-file'].includes(argv[i - 1]) ? [a] : []))
  return JSON.stringify([
    process.env.FAKE_COMPOSE_CONFIG ?? '',
    argv.filter((a, i) => argv[i - 1] === '--profile'),
    files.map((f) => {
      try {
        const st = fs.statSync(f)
        return `${f}:${st.size}:${st.mtimeMs}`
      } catch {
        return `${f}:missing`
      }
    }),
  ])
}

async function loadModel() {
  const key = projectKey()
  if (state.model?.key === key) {
    if (state.model.warnings && norm[1] !== 'config') process.stderr.write(state.model.warnings)
    return state.model.services
  }
  let services
  let warnings = ''
  if (process.env.FAKE_COMPOSE_CONFIG) {
    const loaded = await realLoader(['--format', 'json'])
    if (loaded.status !== 0) fail(loaded.stderr || `compose-config exited ${loaded.status}`, loaded.status === 15 ? 15 : 1)
    warnings = loaded.stderr
    if (warnings && norm[1] !== 'config') process.stderr.write(warnings)
    services = JSON.parse(loaded.stdout).services ?? {}
  } else services = await fallbackModel().catch(() => undefined)
  state.model = { key, services, warnings }
  saveState()
  return services
}

if (norm[0] === 'compose' && norm[1] !== 'version' && scenario.daemon !== false) model = await loadModel()
if (model) {
  // Services Compose creates: enabled by the active profiles, and not scaled to 0.
  modelServices = Object.keys(model).filter((n) => model[n]?.deploy?.replicas !== 0)
  // A service others wait for to complete (kafka-init) runs once: started, it finishes with exit 0.
  for (const svcModel of Object.values(model))
    for (const [dep, d] of Object.entries(svcModel?.depends_on ?? {}))
      if (d?.condition === 'service_completed_successfully') oneShots.add(dep)
}

// ---- volumes: created from the scenario on first use; content is a token copies carry -----------
const DB_VOLUME = `${PROJECT}_postgres-data`
function volumes() {
  if (!state.volumes) {
    state.volumes = {}
    for (const v of scenario.volumes ?? ['postgres-data', 'clickhouse-data'])
      state.volumes[`${PROJECT}_${v}`] = { labels: { 'com.docker.compose.project': PROJECT }, content: `${PROJECT}_${v}@initial` }
  }
  return state.volumes
}
function noSuchVolume(name) {
  fail(`Error response from daemon: get ${name}: no such volume`)
}

// A db volume Compose creates anew is an empty data directory: initdb leaves `postgres` and POSTGRES_DB.
async function freshDbVolume() {
  volumes()[DB_VOLUME] = { labels: { 'com.docker.compose.project': PROJECT }, content: `fresh@${Date.now()}` }
  saveState()
  if (!scenario.pgForward) return
  const { spawnSync } = await import('node:child_process')
  const { host, port, binDir } = scenario.pgForward
  const psql = (sql) => {
    const r = spawnSync(binDir ? `${binDir}/psql` : 'psql', ['-h', String(host), '-p', String(port), '-U', 'posthog', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { encoding: 'utf8' })
    if (r.status !== 0) fail(`fake docker: resetting the test server failed: ${r.stderr}`)
    return r.stdout
  }
  const dbs = psql("SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'").split('\n').filter(Boolean)
  for (const db of dbs) psql(`DROP DATABASE "${db}"`)
  psql('CREATE DATABASE posthog')
}

const [cmd, ...rest] = norm

switch (cmd) {
  case undefined:
    fail('Usage:  docker [OPTIONS] COMMAND')
    break
  case '--version':
  case 'version':
    out('Docker version 28.2.2, build e6534b4')
    break
  case 'info': {
    const fmt = rest[rest.indexOf('--format') + 1] ?? rest.find((a) => a.startsWith('--format='))?.slice(9)
    // Docker CLI >= 23 with a format and no daemon: the client's half of the report with the
    // server's fields zeroed (MemTotal 0, DockerRootDir ""), the error on stderr, exit 1.
    if (scenario.daemon === false && /json/.test(fmt ?? '')) {
      out(JSON.stringify({ ID: '', Containers: 0, Images: 0, NCPU: 0, MemTotal: 0, DockerRootDir: '', ServerVersion: '', OperatingSystem: '', OSType: '', Architecture: '', ClientInfo: { Debug: false, Version: '28.2.2', GitCommit: 'e6534b4', Os: 'linux', Arch: 'arm64', Context: 'default', Plugins: [], Warnings: null } }))
      fail(DAEMON_DOWN)
    }
    needDaemon()
    // `docker info --format '{{json .}}'` (abridged: the fields the toolkit reads).
    const info = {
      ID: 'fake',
      Containers: serviceNames().length,
      NCPU: scenario.ncpu ?? 8,
      MemTotal: scenario.memTotal ?? 16 * 1024 ** 3,
      DockerRootDir: scenario.dockerRootDir ?? '/var/lib/docker',
      ServerVersion: scenario.serverVersion ?? '28.2.2',
      OperatingSystem: scenario.operatingSystem ?? 'Docker Desktop',
      OSType: 'linux',
      Architecture: 'aarch64',
    }
    if (rest.includes('--format') || fmt) {
      if (/json/.test(fmt ?? '')) out(JSON.stringify(info))
      else out(String(fmt).replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, k) => String(info[k] ?? '')))
    } else out(`Server:\n Containers: ${info.Containers}\n Server Version: ${info.ServerVersion}\n CPUs: ${info.NCPU}\n Total Memory: ${(info.MemTotal / 1024 ** 3).toFixed(2)}GiB`)
    break
  }
  case 'compose': {
    const [sub, ...args] = rest
    if (scenario.composeVersion === null) fail("docker: 'compose' is not a docker command.\nSee 'docker --help'")
    const version = scenario.composeVersion ?? '2.29.7'
    if (sub === 'version') {
      out(args.includes('--short') ? version : `Docker Compose version v${version}`)
      break
    }
    needDaemon()
    switch (sub) {
      case 'ps': {
        // The containers that exist: those named, or every one the scenario or an `up` made.
        const named = args.filter((a, i) => !a.startsWith('-') && args[i - 1] !== '--format' && args[i - 1] !== '--filter')
        const names = named.length ? named : serviceNames()
        const visible = names.filter((n) => !svc(n).removed && (args.includes('-a') || args.includes('--all') || svc(n).state === 'running' || svc(n).state === 'restarting'))
        if (args.includes('--services')) out(visible.join('\n'))
        else if (args.includes('json')) out(visible.map(psLine).join('\n'))
        else out(['NAME  IMAGE  SERVICE  STATUS', ...visible.map((n) => `${containerName(n)}  ${svc(n).image ?? n}  ${n}  ${statusText(svc(n))}`)].join('\n'))
        break
      }
      case 'up':
      case 'start':
      case 'restart': {
        const names = selectedServices(args.filter((a, i) => !['--timeout', '-t', '--wait-timeout', '--pull'].includes(args[i - 1])))
        if (sub === 'up') state.created = [...new Set([...(state.created ?? []), ...names])]
        if (sub === 'up' && names.includes('db') && state.volumes && !state.volumes[DB_VOLUME]) await freshDbVolume()
        if (scenario.startOnUp !== false)
          for (const n of names) {
            const { removed, ...was } = svc(n) // a removed container is created anew
            state.services[n] = {
              ...was,
              state: oneShots.has(n) ? 'exited' : 'running',
              exitCode: 0,
              health: was.health ? 'healthy' : '',
              ...(was.onStart ?? {}),
            }
          }
        saveState()
        break
      }
      case 'stop':
      case 'down':
      case 'kill': {
        const names = sub === 'down' ? serviceNames() : selectedServices(args)
        for (const n of names) state.services[n] = { ...svc(n), state: 'exited', exitCode: 0, health: svc(n).health ? 'unhealthy' : '' }
        // `docker compose down -v|--volumes` also removes the project's named volumes.
        if (sub === 'down' && (args.includes('-v') || args.includes('--volumes'))) state.volumesRemoved = true
        saveState()
        break
      }
      case 'rm': {
        // `compose rm --force --stop db`: the container is gone, so its volume is no longer in use.
        for (const n of selectedServices(args)) if (state.services[n]) state.services[n] = { ...svc(n), state: 'exited', removed: true }
        saveState()
        break
      }
      case 'pull':
      case 'create': {
        const names = selectedServices(args.filter((a, i) => !['--policy'].includes(args[i - 1])))
        const key = sub === 'pull' ? 'pulled' : 'created'
        state[key] = [...new Set([...(state[key] ?? []), ...names])]
        saveState()
        break
      }
      case 'config': {
        if (process.env.FAKE_COMPOSE_CONFIG) {
          const answer = await realLoader(args)
          process.stdout.write(answer.stdout)
          process.stderr.write(answer.stderr)
          process.exit(answer.status ?? 1)
        }
        if (args.includes('--services')) out(Object.keys(model ?? state.services).join('\n'))
        else if (args.includes('--volumes')) out((scenario.volumes ?? ['postgres-data', 'clickhouse-data']).join('\n'))
        else if (!args.includes('-q') && !args.includes('--quiet')) out(JSON.stringify({ name: PROJECT, services: model ?? state.services }))
        break
      }
      case 'logs': {
        // `docker compose logs --no-color [--tail N] [--since D] [svc]`: "<service>-<n>  | <line>".
        const tailIdx = args.indexOf('--tail')
        const tail = tailIdx >= 0 ? Number(args[tailIdx + 1]) : Number.POSITIVE_INFINITY
        const names = args.filter((a, i) => !a.startsWith('-') && !['--tail', '--since', '--until', '-n'].includes(args[i - 1]))
        const logs = { ...(scenario.logs ?? {}), ...(state.logs ?? {}) }
        const chosen = names.length ? names : Object.keys(logs)
        const width = Math.max(0, ...chosen.map((n) => `${n}-1`.length))
        const noPrefix = args.includes('--no-log-prefix')
        for (const n of chosen) {
          const lines = logs[n] ?? []
          const shown = Number.isFinite(tail) ? lines.slice(-tail) : lines
          for (const l of shown) out(noPrefix ? l : `${`${n}-1`.padEnd(width)}  | ${l}`)
        }
        break
      }
      case 'exec':
      case 'run': {
        const exec = scenario.exec ?? {}
        const svcName = args.find((a, i) => !a.startsWith('-') && !['-e', '--env', '-u', '--user', '-w', '--workdir'].includes(args[i - 1]))
        const handler = exec[svcName]
        if (handler) {
          if (handler.stdout) out(handler.stdout)
          if (handler.stderr) process.stderr.write(`${handler.stderr}\n`)
          process.exit(handler.exitCode ?? 0)
        }
        if (svcName && svc(svcName).state !== 'running' && sub === 'exec') fail(`service "${svcName}" is not running`)
        if (scenario.pgForward && svcName === 'db') await forwardToPostgres(args.slice(args.indexOf(svcName) + 1))
        break
      }
      default:
        fail(`unknown docker command: "compose ${sub}"`)
    }
    break
  }
  case 'inspect': {
    needDaemon()
    const targets = rest.filter((a, i) => !a.startsWith('-') && rest[i - 1] !== '--format' && rest[i - 1] !== '-f')
    const found = targets.map(inspectOne)
    if (found.some((f) => !f)) {
      out('[]')
      fail(`Error: No such object: ${targets[found.findIndex((f) => !f)]}`)
    }
    out(JSON.stringify(found, null, 4))
    break
  }
  case 'stats': {
    needDaemon()
    // `docker stats --no-stream --format '{{json .}}'`: one object per running container, e.g.
    // {"BlockIO":"0B / 0B","CPUPerc":"0.50%","Container":"3f2a","ID":"3f2a","MemPerc":"75.00%",
    //  "MemUsage":"1.125GiB / 1.5GiB","Name":"posthog-web-1","NetIO":"1kB / 2kB","PIDs":"12"}
    const stats = scenario.stats ?? {}
    const lines = serviceNames()
      .filter((n) => svc(n).state === 'running')
      .map((n) => {
        const s = stats[n] ?? { mem: '100MiB', limit: '15.6GiB' }
        return JSON.stringify({
          BlockIO: '0B / 0B',
          CPUPerc: s.cpu ?? '0.50%',
          Container: containerName(n),
          ID: Buffer.from(n).toString('hex').slice(0, 12),
          MemPerc: s.perc ?? '1.00%',
          MemUsage: `${s.mem} / ${s.limit}`,
          Name: containerName(n),
          NetIO: '1kB / 2kB',
          PIDs: '12',
        })
      })
    out(lines.join('\n'))
    break
  }
  case 'volume': {
    needDaemon()
    const [verb, ...vargs] = rest
    const name = vargs.filter((a, i) => !a.startsWith('-') && !['--label', '--driver', '-d', '--format', '-f'].includes(vargs[i - 1])).at(-1)
    if (verb === 'ls') {
      // `docker volume ls --quiet --filter label=com.docker.compose.project=posthog`: one name a line.
      if (state.volumes)
        out(Object.entries(state.volumes).filter(([, v]) => v.labels['com.docker.compose.project'] === PROJECT).map(([n]) => n).join('\n'))
      else if (!state.volumesRemoved) {
        // The project's volumes: the scenario's, or (by default) once the stack has run or been created.
        const ran = (state.created ?? []).length > 0 || Object.values(scenario.services ?? {}).some((s) => (s.state ?? 'running') !== 'created')
        out((scenario.volumes ?? (ran ? ['postgres-data', 'clickhouse-data'] : [])).map((v) => `${PROJECT}_${v}`).join('\n'))
      }
    } else if (verb === 'create') {
      const labels = Object.fromEntries(vargs.filter((a, i) => vargs[i - 1] === '--label').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
      volumes()[name] ??= { labels, content: '' }
      saveState()
      out(name)
    } else if (verb === 'inspect') {
      const v = volumes()[name]
      if (!v) {
        out('[]')
        noSuchVolume(name)
      }
      out(JSON.stringify([{ CreatedAt: '2026-11-25T10:00:00Z', Driver: 'local', Labels: v.labels, Mountpoint: `/var/lib/docker/volumes/${name}/_data`, Name: name, Options: null, Scope: 'local' }], null, 4))
    } else if (verb === 'rm') {
      if (!volumes()[name]) noSuchVolume(name)
      const db = state.services.db
      if (name === DB_VOLUME && db && !db.removed) fail(`Error response from daemon: remove ${name}: volume is in use - [${Buffer.from('db').toString('hex').padEnd(64, '0')}]`)
      delete state.volumes[name]
      saveState()
      out(name)
    } else fail(`docker: 'volume ${verb}' is not a docker command.`)
    break
  }
  case 'run': {
    needDaemon()
    // `docker run --rm ... -v FROM:/from:ro -v TO:/to IMAGE -c <copy script>`: TO gets FROM's content.
    const mounts = rest.filter((a, i) => rest[i - 1] === '-v').map((m) => m.split(':'))
    const from = mounts.find((m) => m[1] === '/from')?.[0]
    const to = mounts.find((m) => m[1] === '/to')?.[0]
    if (!from || !to) fail('fake docker: only the volume copy is known to `run`')
    for (const v of [from, to]) volumes()[v] ??= { labels: {}, content: '' } // `-v name:` creates a missing volume
    state.volumes[to] = { ...state.volumes[to], content: state.volumes[from].content }
    saveState()
    out('copied 1234 entries')
    break
  }
  case 'system': {
    needDaemon()
    if (rest[0] === 'df') systemDf(rest.slice(1))
    break
  }
  case 'manifest': {
    // `docker manifest inspect <image>` asks the registry itself: no daemon needed. Scenario key
    // `manifests`: the images that exist, e.g. ["posthog/posthog:<sha>"]; without it, every one.
    if (rest[0] !== 'inspect') fail(`docker: 'manifest ${rest[0] ?? ''}' is not a docker command.`)
    const image = rest.slice(1).filter((a) => !a.startsWith('-')).at(-1)
    if (!image) fail('"docker manifest inspect" requires at least 1 argument.')
    const exists = scenario.manifests === undefined || scenario.manifests.includes(image)
    if (!exists) fail(`no such manifest: ${qualifiedImage(image)}`)
    // An OCI image index, as Docker Hub serves PostHog's multi-platform images.
    out(
      JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: ['amd64', 'arm64'].map((architecture, i) => ({
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            size: 2345 + i,
            digest: `sha256:${Buffer.from(`${image}-${architecture}`).toString('hex').padEnd(64, '0').slice(0, 64)}`,
            platform: { architecture, os: 'linux' },
          })),
        },
        null,
        3,
      ),
    )
    break
  }
  default:
    fail(`docker: '${cmd}' is not a docker command.`)
}

// ---- docker system df ------------------------------------------------------------------------
// Sizes as the CLI prints them (go-units HumanSize: decimal units, 4 significant digits; image
// sizes 3).
function humanSize(bytes, precision = 4) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB']
  let size = bytes
  let i = 0
  while (size >= 1000 && i < units.length - 1) {
    size /= 1000
    i++
  }
  return `${Number(size.toPrecision(precision))}${units[i]}`
}

function diskUsage() {
  const du = scenario.diskUsage ?? {}
  const images = du.images ?? serviceNames().map((n) => ({ repository: svc(n).image?.split(':')[0] ?? n, tag: 'latest', size: 200e6 }))
  const volumes = du.volumes ?? (scenario.volumes ?? ['postgres-data', 'clickhouse-data']).map((v) => ({ name: `${PROJECT}_${v}`, size: 100e6, links: 1 }))
  return { images, volumes, buildCache: du.buildCache ?? 0 }
}

// `docker system df -v --format '{{json .}}'` (or `--format json`): one JSON object,
// {"Images":[...],"Containers":[...],"Volumes":[...],"BuildCache":[...]}, each entry the
// formatter's fields (sorted keys, sizes as text); without -v one line per type.
function systemDf(args) {
  const verbose = args.includes('-v') || args.includes('--verbose')
  const json = args.some((a) => /json/.test(a))
  const { images, volumes, buildCache } = diskUsage()
  const total = (xs) => xs.reduce((s, x) => s + x.size, 0)
  if (!json) {
    out(['TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE', `Images          ${images.length}         ${images.length}         ${humanSize(total(images))}    0B (0%)`, `Local Volumes   ${volumes.length}         ${volumes.length}         ${humanSize(total(volumes))}    0B (0%)`].join('\n'))
    return
  }
  if (!verbose) {
    const line = (Type, xs) => JSON.stringify({ Active: String(xs.length), Reclaimable: '0B', Size: humanSize(total(xs)), TotalCount: String(xs.length), Type })
    out([line('Images', images), line('Containers', []), line('Local Volumes', volumes), line('Build Cache', [])].join('\n'))
    return
  }
  out(
    JSON.stringify({
      Images: images.map((i, n) => ({ Containers: '1', CreatedAt: '2026-11-20 10:00:00 +0000 UTC', CreatedSince: '5 days ago', Digest: '<none>', ID: `sha256:${String(n).padStart(64, '0')}`, Repository: i.repository, SharedSize: '0B', Size: humanSize(i.size, 3), Tag: i.tag ?? 'latest', UniqueSize: humanSize(i.size) })),
      Containers: serviceNames().map((n) => ({ Command: '"/docker-entrypoint.sh"', CreatedAt: '2026-11-25 10:00:00 +0000 UTC', ID: Buffer.from(n).toString('hex').slice(0, 12), Image: svc(n).image ?? `${n}:latest`, LocalVolumes: '0', Names: containerName(n), RunningFor: '5 minutes ago', Size: '0B', State: svc(n).state, Status: statusText(svc(n)) })),
      Volumes: volumes.map((v) => ({ Availability: 'N/A', Driver: 'local', Group: 'N/A', Labels: `com.docker.compose.project=${PROJECT}`, Links: String(v.links ?? 1), Mountpoint: `/var/lib/docker/volumes/${v.name}/_data`, Name: v.name, Scope: 'local', Size: humanSize(v.size), Status: 'N/A' })),
      BuildCache: buildCache ? [{ CacheType: 'regular', CreatedSince: '5 days ago', Description: 'pulled', ID: 'abc123', LastUsedSince: '5 days ago', Shared: false, Size: humanSize(buildCache), UsageCount: 1 }] : [],
    }),
  )
}

// How docker names an image in its messages: Docker Hub's host and `library/` spelled out.
function qualifiedImage(image) {
  const [first, ...more] = image.split('/')
  if (more.length && (first.includes('.') || first.includes(':') || first === 'localhost')) return image
  return `docker.io/${more.length ? '' : 'library/'}${image}`
}
