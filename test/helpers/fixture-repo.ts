// A local PostHog-like git repository for tests and benchmarks, and a real smart-HTTP git server
// for it (git http-backend behind a tiny node server on 127.0.0.1) that counts requests and bytes.
//
// API (used by the prepare, up and upgrade tests and by bench/fetch.mts):
//
//   const repo = makePosthogRepo(dir, { commits: 30, unrelatedFiles: 2000 })
//     -> { dir, head, commits[], tags: { v1, v2 }, branch: 'main', mountedFiles[] }
//     A bare repository at `dir` with a hobby compose pair at its root (test/helpers/hobby-fixture.ts,
//     the current shape unless `compose` says 'old', or PostHog's own files from ../shared with
//     'upstream'), its env_file where the shape has one, every path the compose files bind-mount from
//     ./posthog/ (files, and directories holding a few files), a `rust/` build context with many
//     files, and many unrelated files and commits. Tag `v1` points at the middle commit, `v2` (== main) at the last one;
//     `docker/kafka/topics.txt` differs between them. Built with `git fast-import` (fast).
//   addCommit(repo.dir, { 'path': 'content' | null }, 'message', { tag?: 'v3' }) -> new commit sha on main
//   const server = await serveRepo(repo.dir, { policy: 'github', auth: { user, password } })
//     -> { url, stats: { requests, bytes, paths[] }, resetStats(), failNext(n, status|'reset'), close() }
//     `url` is http://127.0.0.1:<port>/<name>; the policy (open, github, v0, no-blob-none) is
//     the server's git configuration, given to http-backend in its environment.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { type HobbyShape, hobbyFiles } from './hobby-fixture.ts'
import { UPSTREAM_POSTHOG } from './shared.ts'

export interface PosthogRepoOptions {
  /** Number of commits on main (at least 2). */
  commits?: number
  /** Number of files unrelated to the stack (spread over a realistic directory tree). */
  unrelatedFiles?: number
  /** Files changed by each commit after the first. */
  filesPerCommit?: number
  /** Directory inside the repository holding the compose files (default: the root). */
  composeDir?: string
  /** Which compose pair: the tests' own current (default) or old shape, or PostHog's own (needs ../shared). */
  compose?: HobbyShape | 'upstream'
  /** Average size of an unrelated file in bytes (the uniform profile). */
  fileSize?: number
  /**
   * `uniform` (default, fast for tests): small files of plain words around `fileSize`.
   * `realistic` (bench): a source tree's heavy-tailed sizes (90% 1-8 KiB, 9% 8-64 KiB, 1%
   * 64-512 KiB: snapshots, lockfiles, fixtures) and code-like text with identifiers and numbers,
   * which compresses about as well as real code (3-4x) rather than 6x+.
   */
  profile?: 'uniform' | 'realistic'
}

export interface PosthogRepo {
  dir: string
  head: string
  commits: string[]
  tags: Record<string, string>
  branch: string
  /** Every file the prepare step needs (compose files, .env.services, mounted files). */
  neededFiles: string[]
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Fixture',
  GIT_AUTHOR_EMAIL: 'fixture@example.invalid',
  GIT_COMMITTER_NAME: 'Fixture',
  GIT_COMMITTER_EMAIL: 'fixture@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
}

export function git(args: string[], opts: { cwd?: string; input?: string | Buffer } = {}): string {
  const res = spawnSync('git', args, {
    cwd: opts.cwd,
    input: opts.input,
    env: { ...process.env, ...GIT_ENV },
    maxBuffer: 1024 * 1024 * 1024,
    timeout: 300_000,
  })
  if (res.status !== 0)
    throw new Error(`git ${args.join(' ')} failed: ${res.stderr?.toString() ?? res.error}`)
  return res.stdout.toString().trim()
}

/** Files (path → content) the compose files need besides themselves: mounted files and directory contents. */
export function mountedContent(
  version: 1 | 2,
  compose: PosthogRepoOptions['compose'] = 'current',
): Record<string, string> {
  return {
    ...(compose === 'old'
      ? {}
      : {
          '.env.services': 'DATABASE_URL=postgres://posthog:posthog@db:5432/posthog\nIS_BEHIND_PROXY=true\n',
        }),
    'posthog/idl/events.json': '{"events": []}\n',
    'posthog/idl/nested/schema.json': '{"schema": 1}\n',
    'posthog/user_scripts/aggregate.py': 'print("hello")\n',
    'docker/clickhouse/docker-entrypoint-initdb.d/init-db.sh': '#!/bin/sh\necho init\n',
    'docker/clickhouse/config.xml':
      '<clickhouse><max_server_memory_usage_to_ram_ratio>0.9</max_server_memory_usage_to_ram_ratio></clickhouse>\n',
    'docker/clickhouse/config.d/default.xml': '<clickhouse/>\n',
    'docker/clickhouse/users.xml': '<clickhouse><users/></clickhouse>\n',
    'docker/clickhouse/user_defined_function.xml': '<functions/>\n',
    'docker/temporal/dynamicconfig/development-sql.yaml': 'limit.maxIDLength:\n  - value: 255\n',
    'docker/livestream/configs-hobby.yml': 'kafka:\n  brokers: kafka:9092\n',
    'docker/kafka/topics.txt':
      version === 1
        ? '# topics\nclickhouse_events_json\n'
        : '# topics\nclickhouse_events_json\nlogs_ingestion\n',
  }
}

/** Siblings of mounted paths that must NOT be fetched (same directories, not mounted). */
export const UNNEEDED_SIBLINGS: Record<string, string> = {
  'docker/clickhouse/README.md': 'not mounted\n',
  'docker/temporal/README.md': 'not mounted\n',
  'posthog/settings.py': 'DEBUG = False\n',
  'docker-compose.dev.yml': 'services: {}\n',
}

const WORDS =
  'posthog event person team cohort insight funnel trend retention session recording flag feature experiment survey dashboard query clickhouse kafka redis worker plugin capture ingestion batch export schema migration'.split(
    ' ',
  )

/** Deterministic pseudo-random text, so repositories are reproducible and compress like code. */
function text(seed: number, size: number): string {
  let x = seed * 2654435761 + 1
  const out: string[] = []
  let len = 0
  while (len < size) {
    x = (x * 1103515245 + 12345) >>> 0
    const w = `${WORDS[x % WORDS.length]}${x % 7 === 0 ? `_${x % 997}` : ''}`
    out.push(w)
    len += w.length + 1
    if (out.length % 12 === 0) out.push('\n')
  }
  return `${out.join(' ')}\n`
}

/** Code-like text: identifiers, numbers and punctuation drawn from a wide vocabulary. */
function codeText(seed: number, size: number): string {
  let x = (seed * 2654435761 + 7) >>> 0
  const next = () => {
    x = (x * 1103515245 + 12345) >>> 0
    return x
  }
  const parts: string[] = []
  let len = 0
  while (len < size) {
    const r = next()
    const word = WORDS[r % WORDS.length]!
    const token =
      r % 5 === 0
        ? `${word}_${(next() % 100_000).toString(36)}`
        : r % 7 === 0
          ? `0x${next().toString(16)}`
          : r % 11 === 0
            ? `${word}(${next() % 1000}, "${(next() % 1e9).toString(36)}")`
            : word
    parts.push(token)
    len += token.length + 1
    if (r % 9 === 0) {
      parts.push('\n')
      len++
    }
  }
  return `${parts.join(' ')}\n`
}

/** Heavy-tailed file sizes of a real source tree. */
function realisticSize(i: number): number {
  const r = ((i * 2654435761) >>> 0) % 1000
  const f = (((i * 40503) >>> 0) % 1000) / 1000
  if (r < 900) return Math.round(1024 + f * 7 * 1024)
  if (r < 990) return Math.round(8 * 1024 + f * 56 * 1024)
  return Math.round(64 * 1024 + f * 448 * 1024)
}

function unrelatedPath(i: number): string {
  const top = ['frontend/src/scenes', 'posthog/api', 'ee/clickhouse', 'products', 'nodejs/src', 'rust'][i % 6]
  return `${top}/m${Math.floor(i / 120) % 40}/d${Math.floor(i / 20) % 6}/file_${i}.${['ts', 'py', 'rs'][i % 3]}`
}

class FastImport {
  private chunks: Buffer[] = []
  private mark = 0
  private time = 1_700_000_000

  commit(files: Record<string, string | null>, message: string, from?: number): number {
    const mark = ++this.mark
    this.time += 3600
    const who = `Fixture <fixture@example.invalid> ${this.time} +0000`
    this.push(`commit refs/heads/main\nmark :${mark}\nauthor ${who}\ncommitter ${who}\n`)
    this.data(message)
    if (from) this.push(`from :${from}\n`)
    for (const [file, content] of Object.entries(files)) {
      if (content === null) this.push(`D ${file}\n`)
      else {
        const mode = file.endsWith('.sh') ? '100755' : '100644'
        this.push(`M ${mode} inline ${file}\n`)
        this.data(content)
      }
    }
    this.push('\n')
    return mark
  }

  tag(name: string, mark: number): void {
    this.push(`reset refs/tags/${name}\nfrom :${mark}\n\n`)
  }

  run(dir: string): void {
    git(['fast-import', '--quiet', `--export-marks=${path.join(dir, 'fixture-marks')}`], {
      cwd: dir,
      input: Buffer.concat(this.chunks),
    })
  }

  private push(s: string): void {
    this.chunks.push(Buffer.from(s))
  }

  private data(s: string): void {
    const b = Buffer.from(s)
    this.push(`data ${b.length}\n`)
    this.chunks.push(b)
    this.push('\n')
  }
}

function composeFiles(
  composeDir: string,
  compose: PosthogRepoOptions['compose'] = 'current',
): Record<string, string> {
  const prefix = composeDir ? `${composeDir.replace(/\/$/, '')}/` : ''
  const read = (f: string) => {
    if (compose !== 'upstream') return hobbyFiles(compose)[f]!
    if (!UPSTREAM_POSTHOG) throw new Error("compose: 'upstream' needs ../shared/fixtures/posthog")
    return fs.readFileSync(path.join(UPSTREAM_POSTHOG, f), 'utf8')
  }
  return {
    [`${prefix}docker-compose.base.yml`]: read('docker-compose.base.yml'),
    [`${prefix}docker-compose.hobby.yml`]: read('docker-compose.hobby.yml'),
  }
}

export function makePosthogRepo(dir: string, opts: PosthogRepoOptions = {}): PosthogRepo {
  const commits = Math.max(2, opts.commits ?? 20)
  const unrelated = opts.unrelatedFiles ?? 1000
  const perCommit = opts.filesPerCommit ?? 5
  const size = opts.fileSize ?? 1200
  const content =
    opts.profile === 'realistic'
      ? (i: number, version: number) => codeText(i * 31 + version, realisticSize(i))
      : (i: number, version: number) => text(i * 31 + version, size / 2 + ((i * 7919 + version) % size))
  fs.mkdirSync(dir, { recursive: true })
  git(['init', '--quiet', '--bare', '--initial-branch=main', dir])
  git(['config', 'uploadpack.allowFilter', 'true'], { cwd: dir })
  git(['config', 'uploadpack.allowAnySHA1InWant', 'true'], { cwd: dir })
  git(['config', 'http.receivepack', 'false'], { cwd: dir })

  const fi = new FastImport()
  const first: Record<string, string> = {
    ...composeFiles(opts.composeDir ?? '', opts.compose),
    ...mountedContent(1, opts.compose),
    ...UNNEEDED_SIBLINGS,
  }
  for (let i = 0; i < unrelated; i++) first[unrelatedPath(i)] = content(i, 0)
  for (let i = 0; i < 40; i++) first[`rust/capture/src/part_${i}.rs`] = text(100_000 + i, size)
  const marks = [fi.commit(first, 'Initial import\n')]
  const middle = Math.floor(commits / 2)
  for (let c = 1; c < commits; c++) {
    const files: Record<string, string> = {}
    for (let k = 0; k < perCommit && unrelated > 0; k++) {
      const i = (c * 7 + k * 131) % unrelated
      files[unrelatedPath(i)] = content(i, c)
    }
    if (c === commits - 1) files['docker/kafka/topics.txt'] = mountedContent(2)['docker/kafka/topics.txt']!
    marks.push(fi.commit(files, `Change ${c}\n`, marks[c - 1]))
  }
  fi.tag('v1', marks[middle]!)
  fi.tag('v2', marks[commits - 1]!)
  fi.run(dir)
  const markMap = new Map(
    fs
      .readFileSync(path.join(dir, 'fixture-marks'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  )
  const shas = marks.map((m) => markMap.get(`:${m}`)!)
  return {
    dir,
    head: shas.at(-1)!,
    commits: shas,
    tags: { v1: shas[middle]!, v2: shas.at(-1)! },
    branch: 'main',
    neededFiles: [
      'docker-compose.base.yml',
      'docker-compose.hobby.yml',
      ...Object.keys(mountedContent(1, opts.compose)).sort(),
    ],
  }
}

/** Adds one commit on main (files: path → content, null deletes) and optionally a tag; returns its sha. */
export function addCommit(
  repoDir: string,
  files: Record<string, string | null>,
  message: string,
  opts: { tag?: string } = {},
): string {
  const parent = git(['rev-parse', 'refs/heads/main'], { cwd: repoDir })
  // fast-import accepts a sha as `from`.
  const time = Math.floor(Date.now() / 1000)
  const who = `Fixture <fixture@example.invalid> ${time} +0000`
  let stream = `commit refs/heads/main\ncommitter ${who}\ndata ${Buffer.byteLength(message)}\n${message}\nfrom ${parent}\n`
  for (const [file, content] of Object.entries(files)) {
    if (content === null) stream += `D ${file}\n`
    else stream += `M 100644 inline ${file}\ndata ${Buffer.byteLength(content)}\n${content}\n`
  }
  git(['fast-import', '--quiet'], { cwd: repoDir, input: `${stream}\n` })
  const sha = git(['rev-parse', 'refs/heads/main'], { cwd: repoDir })
  if (opts.tag) git(['tag', '-f', opts.tag, sha], { cwd: repoDir })
  return sha
}

export interface ServerStats {
  requests: number
  /** Response body bytes sent to git clients. */
  bytes: number
  paths: string[]
}

/**
 * How the server behaves, as real git hosts do:
 * - `open`: protocol v2, any filter, fetch by any commit id (the repository's own config);
 * - `github`: GitHub's filter policy: only `blob:none`, `blob:limit` and `tree:0`;
 * - `v0`: an older server (or a proxy that strips the Git-Protocol header): protocol v0 only;
 * - `no-blob-none`: filters allowed, but not `blob:none` (a filter the server does not allow).
 */
export type ServerPolicy = 'open' | 'github' | 'v0' | 'no-blob-none'

export interface ServeOptions {
  policy?: ServerPolicy
  /** Requests must carry HTTP basic auth with these credentials (401 otherwise). */
  auth?: { user: string; password: string }
}

export interface RepoServer {
  url: string
  stats: ServerStats
  resetStats(): void
  /**
   * The next `count` requests fail: with an HTTP status, or `reset` (the connection is dropped).
   * `count: Infinity` keeps failing until called again with 0.
   */
  failNext(count: number, how: number | 'reset'): void
  close(): Promise<void>
}

const POLICY_CONFIG: Record<ServerPolicy, Record<string, string>> = {
  open: {},
  github: {
    'uploadpackfilter.allow': 'false',
    'uploadpackfilter.blob:none.allow': 'true',
    'uploadpackfilter.blob:limit.allow': 'true',
    'uploadpackfilter.tree.allow': 'true',
    'uploadpackfilter.tree.maxDepth': '0',
  },
  v0: {},
  'no-blob-none': { 'uploadpackfilter.blob:none.allow': 'false' },
}

/** git configuration for the CGI's environment (GIT_CONFIG_COUNT/KEY/VALUE): the repository stays as it is. */
function configEnv(config: Record<string, string>): Record<string, string> {
  const entries = Object.entries(config)
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(entries.length) }
  entries.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k
    env[`GIT_CONFIG_VALUE_${i}`] = v
  })
  return env
}

function authorized(req: http.IncomingMessage, auth: ServeOptions['auth']): boolean {
  if (!auth) return true
  const expected = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`
  return req.headers.authorization === expected
}

/** Serves the bare repository `repoDir` over smart HTTP (git http-backend as CGI) on 127.0.0.1. */
export async function serveRepo(repoDir: string, opts: ServeOptions = {}): Promise<RepoServer> {
  const root = path.dirname(path.resolve(repoDir))
  const name = path.basename(repoDir)
  const policy = opts.policy ?? 'open'
  const stats: ServerStats = { requests: 0, bytes: 0, paths: [] }
  let failures = { count: 0, how: 503 as number | 'reset' }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    stats.requests++
    stats.paths.push(`${req.method} ${url.pathname}${url.search}`)
    if (failures.count > 0) {
      failures.count--
      if (failures.how === 'reset') req.socket.destroy()
      else res.writeHead(failures.how, { 'content-type': 'text/plain' }).end('failing on purpose\n')
      return
    }
    if (!authorized(req, opts.auth)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"', 'content-type': 'text/plain' })
      res.end('authentication required\n')
      return
    }
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        CONTENT_LENGTH: req.headers['content-length'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        // An older server (or a proxy) never passes the header on, so git speaks protocol v0.
        GIT_PROTOCOL: policy === 'v0' ? '' : ((req.headers['git-protocol'] as string | undefined) ?? ''),
        REMOTE_ADDR: '127.0.0.1',
        ...configEnv(POLICY_CONFIG[policy]),
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    })
    req.pipe(child.stdin)
    let head = Buffer.alloc(0)
    let headersDone = false
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        stats.bytes += chunk.length
        res.write(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const sep = head.indexOf('\r\n\r\n') >= 0 ? head.indexOf('\r\n\r\n') : head.indexOf('\n\n')
      if (sep < 0) return
      const sepLen = head[sep] === 13 ? 4 : 2
      const headerLines = head.subarray(0, sep).toString().split(/\r?\n/)
      let status = 200
      for (const line of headerLines) {
        const i = line.indexOf(':')
        const key = line.slice(0, i).trim()
        const value = line.slice(i + 1).trim()
        if (/^status$/i.test(key)) status = Number.parseInt(value, 10)
        else res.setHeader(key, value)
      }
      res.writeHead(status)
      headersDone = true
      const body = head.subarray(sep + sepLen)
      stats.bytes += body.length
      res.write(body)
    })
    child.stdin.on('error', () => {}) // the client went away
    child.on('close', () => res.end())
    child.on('error', () => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/${name}`,
    stats,
    resetStats() {
      stats.requests = 0
      stats.bytes = 0
      stats.paths = []
    },
    failNext(count, how) {
      failures = { count, how }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Stable key for caching a generated repository by its parameters. */
export function repoCacheKey(opts: PosthogRepoOptions): string {
  const compose = Object.values(composeFiles(opts.composeDir ?? '', opts.compose)).join('\n')
  return createHash('sha256')
    .update(JSON.stringify(opts))
    .update(compose)
    .update(fs.readFileSync(new URL(import.meta.url)))
    .digest('hex')
    .slice(0, 16)
}

/** Paths of `commit` in `repoDir` whose blob `checkout` holds (read without fetching anything). */
export function presentBlobPaths(checkout: string, repoDir: string, commit: string): string[] {
  const present = new Set(
    git(['cat-file', '--batch-all-objects', '--batch-check=%(objectname)'], { cwd: checkout }).split('\n'),
  )
  return git(['ls-tree', '-r', commit], { cwd: repoDir })
    .split('\n')
    .map((l) => /^\d+ blob ([0-9a-f]{40})\t(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && present.has(m[1]!))
    .map((m) => m[2]!)
    .sort()
}
