// prepare's fetch against real git servers: the fixture repository served over smart HTTP the
// ways real hosts serve it (open, GitHub's filter policy, protocol v0 only) and over file://;
// refusals and network failures; credentials in POSTHOG_REPO_URL; interruptions at every git
// call; re-runs with the server gone; a floating POSTHOG_APP_TAG frozen at a commit whose images
// exist (the fake docker answers `manifest inspect`). Scripts are spawned as users run them; a git
// shim first on PATH logs (and, when asked, interrupts) every git command the script runs.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../lib/core/env.mts'
import { prepareStack } from '../../lib/stack/prepare.mts'
import { FAKES, type ProcessResult, ROOT, scratchDir, startProcess, writeEnvFile } from '../helpers/common.ts'
import {
  addCommit,
  git,
  makePosthogRepo,
  type PosthogRepo,
  presentBlobPaths,
  type RepoServer,
  type ServerPolicy,
  serveRepo,
} from '../helpers/fixture-repo.ts'
import * as stackEnv from '../helpers/stack-env.ts'

const SECRET = '5eed1e55'.repeat(7)
const SALT = 'fe7c4f00'.repeat(4)
const REAL_GIT = execFileSync('sh', ['-c', 'command -v git']).toString().trim()

let tmp: string
let repo: PosthogRepo
let shimDir: string

// Logs every git command to $SHIM_LOG; at call $SHIM_KILL_AT it sends $SHIM_SIGNAL to the runner
// ($PPID) or its whole process group, before git starts or $SHIM_DELAY seconds into it.
const SHIM = `#!/bin/sh
n=$(( $(wc -l < "$SHIM_LOG" 2>/dev/null || echo 0) + 1 ))
printf '%s\\n' "$*" >> "$SHIM_LOG"
if [ "$n" = "\${SHIM_KILL_AT:-0}" ]; then
  target=$PPID
  [ "$SHIM_SCOPE" = group ] && target=-$PPID
  if [ "\${SHIM_DELAY:-0}" = 0 ]; then
    kill -s "$SHIM_SIGNAL" -- "$target"
  else
    ( sleep "$SHIM_DELAY"; kill -s "$SHIM_SIGNAL" -- "$target" ) &
  fi
fi
exec "$SHIM_REAL_GIT" "$@"
`

beforeAll(() => {
  tmp = scratchDir('prepare-fetch-')
  repo = makePosthogRepo(path.join(tmp, 'posthog.git'), { commits: 6, unrelatedFiles: 300 })
  shimDir = path.join(tmp, 'shim')
  fs.mkdirSync(shimDir)
  fs.writeFileSync(path.join(shimDir, 'git'), SHIM, { mode: 0o755 })
}, 60_000)

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

interface Project {
  dir: string
  stack: string
  checkout: string
  gitLog: string
  env: Record<string, string>
}

let projects = 0

/** A project with a fixed .env (the same secrets everywhere, so STACK_DIRs compare byte for byte). */
function project(repoUrl: string, env: Record<string, string> = {}): Project {
  const dir = path.join(tmp, `p${++projects}`)
  fs.mkdirSync(dir)
  writeEnvFile(path.join(dir, '.env'), { POSTHOG_SECRET: SECRET, ENCRYPTION_SALT_KEYS: SALT })
  const stack = path.join(dir, 'stack')
  const gitLog = path.join(dir, 'git-commands.log')
  return {
    dir,
    stack,
    checkout: path.join(stack, 'posthog'),
    gitLog,
    env: {
      PATH: `${shimDir}:${FAKES}:${process.env.PATH}`,
      SHIM_LOG: gitLog,
      SHIM_REAL_GIT: REAL_GIT,
      HOMELAB_ENV_FILE: path.join(dir, '.env'),
      STACK_DIR: stack,
      POSTHOG_REPO_URL: repoUrl,
      POSTHOG_APP_TAG: 'v1',
      HOMELAB_FETCH_RETRIES: '3',
      HOMELAB_FETCH_BACKOFF: '10ms',
      HOMELAB_NO_GEOIP: '1',
      FAKE_DOCKER_SCENARIO: path.join(dir, 'scenario.json'),
      FAKE_DOCKER_LOG: path.join(dir, 'docker.log'),
      ...env,
    },
  }
}

function prepare(p: Project, env: Record<string, string> = {}, onSpawn?: (pid: number) => void) {
  const child = startProcess(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/prepare.mts')], {
    cwd: ROOT,
    env: { ...process.env, ...p.env, ...env },
    detached: true, // its own process group, as a terminal's Ctrl-C reaches it
    timeoutMs: 120_000,
  })
  onSpawn?.(child.pid)
  return child.done
}

/** The same run in this process (quicker), as the next run after an interruption. */
async function prepareHere(p: Project, tag = 'v1') {
  const cfg = loadConfig({
    envFile: p.env.HOMELAB_ENV_FILE,
    env: { STACK_DIR: p.stack, POSTHOG_REPO_URL: p.env.POSTHOG_REPO_URL!, POSTHOG_APP_TAG: tag },
  })
  return prepareStack(cfg, { geoip: false, log: () => {} })
}

function oneLine(r: ProcessResult): string {
  const lines = r.stderr.trim().split('\n')
  expect(lines, r.stderr).toHaveLength(1)
  return lines[0]!
}

/** Every file under STACK_DIR but git's own bookkeeping: content hash and mode. */
function stackContents(stack: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(stack, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${e.name}` : e.name
      if (['posthog/.git', 'posthog-version.json', '.lock'].includes(child)) continue
      const full = path.join(stack, child)
      if (e.isDirectory()) {
        out[`${child}/`] = 'dir'
        walk(child)
      } else
        out[child] =
          `${crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')} ${fs.statSync(full).mode & 0o777}`
    }
  }
  walk('')
  return out
}

/** Files in the checkout's working tree (empty directories aside). */
function worktreeFiles(checkout: string): string[] {
  const out: string[] = []
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(checkout, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${e.name}` : e.name
      if (child === '.git') continue
      if (e.isDirectory()) walk(child)
      else out.push(child)
    }
  }
  walk('')
  return out.sort()
}

/** The checkout is complete, at `commit`, with exactly the needed files and nothing else fetched. */
function expectGoodCheckout(p: Project, commit: string): void {
  expect(git(['rev-parse', 'HEAD'], { cwd: p.checkout })).toBe(commit)
  expect(worktreeFiles(p.checkout)).toEqual([...repo.neededFiles].sort())
  expect(presentBlobPaths(p.checkout, repo.dir, commit)).toEqual([...repo.neededFiles].sort())
  expect(fs.existsSync(path.join(p.checkout, '.git', 'homelab-changing'))).toBe(false)
  expect(fs.readdirSync(p.stack).filter((f) => f.includes('broken'))).toEqual([])
}

function gitCommands(p: Project): string[] {
  return fs.existsSync(p.gitLog) ? fs.readFileSync(p.gitLog, 'utf8').trim().split('\n') : []
}

describe('prepare against real git servers', () => {
  const servers: RepoServer[] = []
  afterAll(async () => {
    for (const s of servers) await s.close()
  })
  async function served(policy: ServerPolicy, opts: Parameters<typeof serveRepo>[1] = {}) {
    const s = await serveRepo(repo.dir, { policy, ...opts })
    servers.push(s)
    return s
  }

  it('prepares the same STACK_DIR from an open server, a GitHub-like one, a protocol v0 one and file://', async () => {
    const results: Record<string, Record<string, string>> = {}
    for (const policy of ['open', 'github', 'v0', 'file'] as const) {
      const server = policy === 'file' ? undefined : await served(policy)
      const p = project(server?.url ?? `file://${repo.dir}`)
      const r = await prepare(p)
      expect(r.code, `${policy}: ${r.stderr}`).toBe(0)
      expect(r.stderr).toBe('')
      expect(r.stdout).not.toMatch(/retrying/)
      if (server) expect(server.stats.requests, policy).toBeLessThanOrEqual(10)
      expectGoodCheckout(p, repo.tags.v1!)
      results[policy] = stackContents(p.stack)
      // Moving to another tag works the same way on every server.
      const v2 = await prepare(p, { POSTHOG_APP_TAG: 'v2' })
      expect(v2.code, `${policy}: ${v2.stderr}`).toBe(0)
      expectGoodCheckout(p, repo.tags.v2!)
    }
    expect(Object.keys(results.open!)).toContain('posthog/docker/kafka/topics.txt')
    for (const policy of ['github', 'v0', 'file']) expect(results[policy], policy).toEqual(results.open)
  }, 300_000)

  it('does not retry a refusal: an HTTP 403, or a filter the server does not allow', async () => {
    const forbidden = await served('open')
    forbidden.failNext(Number.POSITIVE_INFINITY, 403)
    let r = await prepare(project(forbidden.url))
    expect(r.code).toBe(1)
    expect(oneLine(r)).toMatch(/^prepare: error: (looking up|fetching) v1 from .* was refused: .*403/)
    expect(r.stdout).not.toMatch(/retrying/)
    expect(forbidden.stats.requests).toBe(1)

    const noBlobNone = await served('no-blob-none')
    r = await prepare(project(noBlobNone.url))
    expect(r.code).toBe(1)
    expect(oneLine(r)).toMatch(
      /fetching v1 from .* was refused by the server: .*filter 'blob:none' not supported/,
    )
    expect(r.stdout).not.toMatch(/retrying/)
  }, 60_000)

  it('retries network failures: 5xx answers and dropped connections', async () => {
    const flaky = await served('github')
    flaky.failNext(2, 503)
    let p = project(flaky.url)
    let r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.match(/network error .* retrying/g)).toHaveLength(2)
    expectGoodCheckout(p, repo.tags.v1!)

    flaky.failNext(1, 'reset')
    p = project(flaky.url)
    r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/network error .* retrying/)
    expectGoodCheckout(p, repo.tags.v1!)
  }, 120_000)

  it('refuses a POSTHOG_REPO_URL starting with - (exit 2, one line) before writing anything', async () => {
    const p = project('--upload-pack@evil.example:repo.git')
    fs.rmSync(path.join(p.dir, '.env'))
    const r = await prepare(p)
    expect(r.code).toBe(2)
    expect(oneLine(r)).toMatch(/POSTHOG_REPO_URL must not start with -/)
    expect(fs.readdirSync(p.dir)).toEqual([])
  }, 60_000)
})

describe('credentials in POSTHOG_REPO_URL', () => {
  const TOKEN = 'ghp_T0kenThatMustNotLeak42'
  let server: RepoServer
  beforeAll(async () => {
    server = await serveRepo(repo.dir, { policy: 'github', auth: { user: 'homelab', password: TOKEN } })
  })
  afterAll(() => server.close())

  const withToken = (token: string) => server.url.replace('http://', `http://homelab:${token}@`)

  /** Every file under `dir` that holds `secret` (whoever may read it). */
  function filesWith(dir: string, secret: string): string[] {
    const found: string[] = []
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const full = path.join(d, e.name)
        if (e.isDirectory()) walk(full)
        else if (e.isFile() && fs.readFileSync(full).includes(secret)) found.push(full)
      }
    }
    walk(dir)
    return found
  }

  it('are on no command line, in no file under STACK_DIR and in no output', async () => {
    const p = project(withToken(TOKEN))
    const trace = path.join(p.dir, 'git-trace.log')
    // GIT_TRACE logs the argv of every git process, git's own children (remote-http) included.
    const r = await prepare(p, { GIT_TRACE: trace })
    expect(r.code, r.stderr).toBe(0)
    expectGoodCheckout(p, repo.tags.v1!)
    expect(gitCommands(p).length).toBeGreaterThan(5)
    expect(gitCommands(p).join('\n')).not.toContain(TOKEN)
    expect(fs.readFileSync(trace, 'utf8')).toMatch(/remote-http/)
    expect(fs.readFileSync(trace, 'utf8')).not.toContain(TOKEN)
    expect(filesWith(p.stack, TOKEN)).toEqual([])
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
    // The checkout remembers the URL without the credential, and a re-run finds it its own.
    expect(git(['config', 'remote.origin.url'], { cwd: p.checkout })).toBe(server.url)
    const again = await prepare(p, { POSTHOG_APP_TAG: 'v2' })
    expect(again.code, again.stderr).toBe(0)
    expectGoodCheckout(p, repo.tags.v2!)
    expect(filesWith(p.stack, TOKEN)).toEqual([])
  }, 120_000)

  it('a wrong token is refused in one line, not retried, and not printed', async () => {
    const wrong = 'ghp_WrongTokenValue0000'
    const p = project(withToken(wrong))
    server.resetStats()
    const r = await prepare(p)
    expect(r.code).toBe(1)
    expect(oneLine(r)).toMatch(/(looking up|fetching) v1 from .* was refused: .*check POSTHOG_REPO_URL/)
    expect(r.stdout).not.toMatch(/retrying/)
    expect(r.stdout + r.stderr).not.toContain(wrong)
    expect(server.stats.requests).toBeLessThanOrEqual(2)
  }, 60_000)
})

describe('an interrupted fetch never leaves a checkout the next run takes for good', () => {
  let server: RepoServer
  beforeAll(async () => {
    server = await serveRepo(repo.dir, { policy: 'github' })
  })
  afterAll(() => server.close())

  /** Number of git commands a clean run of `tag` starts (on a fresh project, or after `setup`). */
  async function commandsOfCleanRun(
    tag: string,
    setup?: (p: Project) => Promise<unknown>,
  ): Promise<string[]> {
    const p = project(server.url)
    await setup?.(p)
    const r = await prepare(p, { POSTHOG_APP_TAG: tag })
    expect(r.code, r.stderr).toBe(0)
    return gitCommands(p)
  }

  /** Kills a run of `tag` at git command `at`, then checks that the next run ends right. */
  async function interruptAt(
    at: number,
    kill: { signal: 'KILL' | 'INT'; scope: 'runner' | 'group'; delay?: string },
    tag: string,
    setup?: (p: Project) => Promise<unknown>,
  ): Promise<void> {
    const p = project(server.url)
    await setup?.(p)
    const killed = await prepare(p, {
      POSTHOG_APP_TAG: tag,
      SHIM_KILL_AT: String(at),
      SHIM_SIGNAL: kill.signal,
      SHIM_SCOPE: kill.scope,
      SHIM_DELAY: kill.delay ?? '0',
    })
    const what = `killed (${kill.signal} to the ${kill.scope}) at git command ${at}: ${gitCommands(p)[at - 1]}`
    // A kill timed to land inside a git command may come after a quick run ended.
    if (!kill.delay) expect(killed.code, what).not.toBe(0)
    const next = await prepareHere(p, tag).catch((e: Error) => e)
    expect(next instanceof Error ? next.message : 'ok', what).toBe('ok')
    expectGoodCheckout(p, repo.tags[tag]!)
  }

  it('a first fetch, killed before each of its git commands', async () => {
    const commands = await commandsOfCleanRun('v1')
    expect(commands.length).toBeGreaterThan(8)
    for (let at = 1; at <= commands.length; at++)
      await interruptAt(
        at,
        at % 2 ? { signal: 'KILL', scope: 'runner' } : { signal: 'INT', scope: 'group' },
        'v1',
      )
  }, 600_000)

  it('a first fetch, killed while git fetches and checks out', async () => {
    const commands = await commandsOfCleanRun('v1')
    const busy = commands.flatMap((c, i) => (/^(fetch|checkout)/.test(c) ? [i + 1] : []))
    expect(busy.length).toBeGreaterThanOrEqual(3)
    for (const [i, at] of busy.entries())
      await interruptAt(at, { signal: 'KILL', scope: 'group', delay: ['0.02', '0.1', '0.3'][i % 3] }, 'v1')
  }, 600_000)

  it('a move to another version, killed before each of its git commands', async () => {
    const atV1 = (p: Project) => prepareHere(p, 'v1')
    const commands = await commandsOfCleanRun('v2', atV1)
    expect(commands.some((c) => c.startsWith('checkout'))).toBe(true)
    for (let at = 1; at <= commands.length; at++)
      await interruptAt(
        at,
        at % 2 ? { signal: 'INT', scope: 'group' } : { signal: 'KILL', scope: 'runner' },
        'v2',
        atV1,
      )
  }, 600_000)
})

describe('re-runs for the version already prepared need no network', () => {
  let server: RepoServer
  beforeAll(async () => {
    server = await serveRepo(repo.dir, { policy: 'github' })
  })
  afterAll(() => server.close())

  it('a tag: one notice line when the server does not answer, no retries, nothing changed', async () => {
    const own = await serveRepo(repo.dir, { policy: 'github' })
    const p = project(own.url)
    expect((await prepare(p)).code).toBe(0)
    const before = stackContents(p.stack)
    await own.close()
    const r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).not.toMatch(/retrying/)
    expect(r.stdout.match(/did not answer/g)).toHaveLength(1)
    expect(r.stdout).toMatch(
      /notice: .* did not answer .*; using v1 as prepared before \(commit [0-9a-f]{12}\)/,
    )
    expect(r.stdout).toMatch(/nothing changed/)
    expect(stackContents(p.stack)).toEqual(before)
  }, 120_000)

  it('a commit: not even a notice', async () => {
    const own = await serveRepo(repo.dir, { policy: 'github' })
    const p = project(own.url, { POSTHOG_APP_TAG: repo.commits[2]! })
    expect((await prepare(p)).code).toBe(0)
    await own.close()
    const r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).not.toMatch(/notice: .*answer|retrying|fetching/)
    expect(r.stdout).toMatch(/nothing changed/)
    expectGoodCheckout(p, repo.commits[2]!)
  }, 120_000)

  it('a tag, with the server up: one look-up, no fetch', async () => {
    const p = project(server.url, { POSTHOG_APP_TAG: 'v1' })
    expect((await prepare(p)).code).toBe(0)
    server.resetStats()
    const r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    // Only the look-up: the tag still names the commit checked out.
    expect(server.stats.paths.filter((x) => x.startsWith('POST'))).toHaveLength(1)
  }, 120_000)
})

describe('up after a power cut, with the git server still down', () => {
  const SERVICES = ['db', 'redis7', 'clickhouse', 'kafka', 'web', 'proxy', 'worker', 'plugins']

  it.each([
    ['latest (frozen)', 'latest', 0],
    ['a tag', 'v1', 1],
  ])(
    '%s: up uses the prepared checkout and the local images, with at most one notice',
    async (_name, tag, notices) => {
      const own = await serveRepo(repo.dir, { policy: 'github' })
      const p = stackEnv.makeProject({ withEnv: { POSTHOG_APP_TAG: tag } })
      const health = await stackEnv.healthServer(p, stackEnv.usualStart)
      try {
        Object.assign(p.env, {
          POSTHOG_REPO_URL: own.url,
          POSTHOG_PROXY_HTTP_PORT: String(health.port),
          HOMELAB_RETRY_BACKOFF: '10ms',
          HOMELAB_FETCH_BACKOFF: '10ms',
        })
        p.scenario({ services: Object.fromEntries(SERVICES.map((x) => [x, { state: 'created' }])) })
        const first = await stackEnv.runScript('up', ['--no-geoip'], p)
        expect(first.code, first.stderr).toBe(0)
        await own.close()
        const again = await stackEnv.runScript('up', ['--no-geoip'], p)
        expect(again.code, again.stderr).toBe(0)
        expect(again.stdout).toMatch(/PostHog is healthy/)
        expect(again.stdout).not.toMatch(/retrying|fetching/)
        expect(again.stdout.match(/did not answer/g) ?? []).toHaveLength(notices)
        expect(p.calls().filter((c) => c[1] === 'pull')).toEqual([])
      } finally {
        await own.close()
        await health.close()
        p.cleanup()
      }
    },
    180_000,
  )
})

describe('a floating POSTHOG_APP_TAG (latest, a branch) is frozen', () => {
  let floating: PosthogRepo
  let server: RepoServer
  beforeAll(async () => {
    floating = makePosthogRepo(path.join(tmp, 'floating.git'), { commits: 8, unrelatedFiles: 50 })
    server = await serveRepo(floating.dir, { policy: 'github' })
  }, 60_000)
  afterAll(() => server.close())

  const c = (i: number) => floating.commits[i]!
  const images = (repoName: string, commits: string[]) => commits.map((x) => `${repoName}:${x}`)
  function scenario(p: Project, manifests: string[], extra: object = {}) {
    fs.writeFileSync(p.env.FAKE_DOCKER_SCENARIO!, JSON.stringify({ manifests, ...extra }))
  }
  function manifestCalls(p: Project): string[] {
    const log = p.env.FAKE_DOCKER_LOG!
    if (!fs.existsSync(log)) return []
    return fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { argv: string[] }).argv)
      .filter((a) => a[0] === 'manifest')
      .map((a) => a.at(-1)!)
  }
  const stackEnv = (p: Project) =>
    Object.fromEntries(
      fs
        .readFileSync(path.join(p.stack, '.env'), 'utf8')
        .split('\n')
        .filter((l) => /^POSTHOG_(APP|NODE)_TAG=/.test(l))
        .map((l) => l.split('=') as [string, string]),
    )

  it('resolves latest once to the newest commit with an app image, pairs the node image, and records both', async () => {
    const p = project(server.url, { POSTHOG_APP_TAG: 'latest' })
    // The two newest commits have no images yet; node images exist up to commit 3.
    scenario(p, [
      ...images('posthog/posthog', floating.commits.slice(0, 6)),
      ...images('posthog/posthog-node', floating.commits.slice(0, 4)),
    ])
    const r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(manifestCalls(p)).toEqual([
      ...images('posthog/posthog', [c(7), c(6), c(5)]),
      ...images('posthog/posthog-node', [c(5), c(4), c(3)]),
    ])
    expect(r.stdout).toContain(
      `PostHog latest is held at commit ${c(5).slice(0, 12)} (the newest with published images on `,
    )
    expect(r.stdout).toMatch(/'npx tsx scripts\/upgrade\.mts --to latest' moves it$/m)
    expect(git(['rev-parse', 'HEAD'], { cwd: p.checkout })).toBe(c(5))
    expect(stackEnv(p)).toEqual({ POSTHOG_APP_TAG: c(5), POSTHOG_NODE_TAG: c(3) })
    const record = JSON.parse(fs.readFileSync(path.join(p.stack, 'posthog-version.json'), 'utf8'))
    expect(record).toEqual({
      ref: 'latest',
      kind: 'branch',
      commit: c(5),
      appTag: c(5),
      nodeTag: c(3),
      repoUrl: server.url,
      registryUrl: 'posthog/posthog',
      resolvedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    expect(fs.statSync(path.join(p.stack, 'posthog-version.json')).mode & 0o777).toBe(0o644)

    // main moves on and its images appear: re-runs stay where they were, without asking anyone.
    addCommit(floating.dir, { 'docker/kafka/topics.txt': 'moved on\n' }, 'main moves on')
    fs.writeFileSync(p.env.FAKE_DOCKER_SCENARIO!, '{}') // every image exists now
    server.resetStats()
    const calls = manifestCalls(p).length
    const again = await prepare(p)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/nothing changed/)
    expect(again.stdout).toContain(`PostHog latest is held at commit ${c(5).slice(0, 12)}`)
    expect(server.stats.requests).toBe(0)
    expect(manifestCalls(p)).toHaveLength(calls)
    expect(git(['rev-parse', 'HEAD'], { cwd: p.checkout })).toBe(c(5))
    expect(stackEnv(p)).toEqual({ POSTHOG_APP_TAG: c(5), POSTHOG_NODE_TAG: c(3) })
  }, 120_000)

  it('keeps a POSTHOG_NODE_TAG set by the user, and says when no node image matches', async () => {
    let p = project(server.url, { POSTHOG_APP_TAG: 'main', POSTHOG_NODE_TAG: 'mine' })
    let r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    const head = git(['rev-parse', 'refs/heads/main'], { cwd: floating.dir })
    expect(stackEnv(p)).toEqual({ POSTHOG_APP_TAG: head, POSTHOG_NODE_TAG: 'mine' })
    expect(manifestCalls(p)).toEqual([`posthog/posthog:${head}`])

    p = project(server.url, { POSTHOG_APP_TAG: 'latest' })
    scenario(p, [`posthog/posthog:${head}`])
    r = await prepare(p)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.match(/notice: no posthog\/posthog-node image matches/g)).toHaveLength(1)
    expect(stackEnv(p)).toEqual({ POSTHOG_APP_TAG: head, POSTHOG_NODE_TAG: 'latest' })
  }, 120_000)

  it('ends in one line (exit 1) when no commit has images or the registry does not answer, writing nothing', async () => {
    let p = project(server.url, { POSTHOG_APP_TAG: 'latest' })
    scenario(p, ['posthog/posthog:some-other-tag'])
    let r = await prepare(p)
    expect(r.code).toBe(1)
    expect(oneLine(r)).toMatch(/none of the newest \d+ commits of latest has an image in posthog\/posthog/)
    expect(fs.existsSync(p.stack) ? fs.readdirSync(p.stack) : []).toEqual([])

    p = project(server.url, { POSTHOG_APP_TAG: 'latest' })
    scenario(p, [], {
      rules: [
        {
          match: '^manifest inspect',
          stderr:
            'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
          exitCode: 1,
        },
      ],
    })
    r = await prepare(p)
    expect(r.code).toBe(1)
    expect(oneLine(r)).toMatch(
      /could not ask the registry whether posthog\/posthog:[0-9a-f]{40} exists: .*no such host/,
    )
    expect(fs.existsSync(p.stack) ? fs.readdirSync(p.stack) : []).toEqual([])
  }, 120_000)
})
