// Getting PostHog's source at one ref into STACK_DIR/posthog, fetching as little as possible:
// shallow (depth 1), partial (no blobs until checkout needs them) and sparse (non-cone
// patterns naming exactly the files the stack reads). A re-run moves the same checkout to the
// new ref; a broken or foreign checkout is moved aside, never deleted.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { $, expBackoff, type ProcessOutput, sleep } from 'zx'
import { RuntimeFailure, UsageError } from './cli.mts'
import { isGitRefName } from './env.mts'
import { timestamp, writeFileAtomic } from './fsutil.mts'
import { fetchPack, lsRefs, WireError } from './gitwire.mts'

export interface FetchOptions {
  repoUrl: string
  /** A tag, a branch, `latest` (the default branch's head) or a 40-hex commit. */
  ref: string
  /** The checkout, STACK_DIR/posthog. */
  dir: string
  /** Repository paths (files or directories) to have in the working tree. */
  paths: string[]
  log?: (line: string) => void
  /** Attempts for each network step (env HOMELAB_FETCH_RETRIES, default 4). */
  retries?: number
  /** First backoff delay, doubling up to 30 s (env HOMELAB_FETCH_BACKOFF, default 2s). */
  backoff?: string
}

export interface FetchResult {
  commit: string
  /** The commit checked out before, if the checkout already existed. */
  previousCommit?: string
  /** A new checkout was created (first run, or the old one was moved aside). */
  fresh: boolean
  /** Where a broken or foreign checkout was moved. */
  movedAside?: string
}

const LOCAL_TIMEOUT = '60s'
const NETWORK_TIMEOUT = '15m'

/** A child environment for git: no prompts, stable messages, nothing inherited that redirects git. */
function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR'])
    delete env[k]
  return env
}

function git(dir: string, args: string[], timeout = LOCAL_TIMEOUT): Promise<ProcessOutput> {
  return $({ cwd: dir, env: gitEnv(), quiet: true, timeout: timeout as `${number}s` })`git ${args}`
}

function gitNothrow(dir: string, args: string[]): Promise<ProcessOutput> {
  return $({ cwd: dir, env: gitEnv(), quiet: true, nothrow: true, timeout: LOCAL_TIMEOUT })`git ${args}`
}

/** What the user's ref means to `git fetch`: `latest` is the remote's HEAD. */
export function refspecFor(ref: string): string {
  if (!isGitRefName(ref)) throw new UsageError(`POSTHOG_APP_TAG=${ref} is not a valid git ref name`)
  return ref === 'latest' ? 'HEAD' : ref
}

/** Non-cone sparse-checkout patterns matching exactly these paths (a directory includes its contents). */
export function sparsePatterns(paths: string[]): string[] {
  const escapeGlob = (p: string) => p.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`)
  return [...new Set(paths.map((p) => `/${escapeGlob(p.replace(/^\/+|\/+$/g, ''))}`))].sort()
}

export type FailureKind = 'network' | 'missing-ref' | 'missing-repo' | 'other'

export function classifyGitError(stderr: string): FailureKind {
  if (
    /couldn't find remote ref|not our ref|no such remote ref|unadvertised object|not a tree|bad object/i.test(
      stderr,
    )
  )
    return /couldn't find remote ref|not our ref|no such remote ref|unadvertised object/i.test(stderr)
      ? 'missing-ref'
      : 'other'
  if (
    /repository '.*' not found|does not appear to be a git repository|HTTP 404|returned error: 404/i.test(
      stderr,
    )
  )
    return 'missing-repo'
  if (
    /could not resolve|failed to connect|connection (refused|reset|timed out)|timed out|unable to access|early EOF|RPC failed|remote end hung up|HTTP 5\d\d|error: 5\d\d|could not read from remote|unexpected disconnect|transfer closed/i.test(
      stderr,
    )
  )
    return 'network'
  return 'other'
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => !/^\s*$/.test(l))
      .at(-1) ?? ''
  )
}

function retryCount(opts: FetchOptions): number {
  const fromEnv = Number.parseInt(process.env.HOMELAB_FETCH_RETRIES ?? '', 10)
  return Math.max(1, opts.retries ?? (Number.isFinite(fromEnv) ? fromEnv : 4))
}

/**
 * Runs a network step with bounded retries and exponential backoff (zx expBackoff: base,
 * doubling, at most 30 s). Only network errors are retried; a missing ref or repository is bad
 * configuration (exit 2). Failures become one clear line.
 */
async function networkStep(opts: FetchOptions, what: string, step: () => Promise<unknown>): Promise<void> {
  const attempts = retryCount(opts)
  const delays = expBackoff(
    '30s',
    (opts.backoff ?? process.env.HOMELAB_FETCH_BACKOFF ?? '2s') as `${number}s`,
  )
  for (let attempt = 1; ; attempt++) {
    try {
      await step()
      return
    } catch (e) {
      if (e instanceof UsageError || e instanceof RuntimeFailure) throw e
      const stderr = e instanceof WireError ? e.message : ((e as ProcessOutput).stderr ?? String(e))
      const kind = e instanceof WireError && e.network ? 'network' : classifyGitError(stderr)
      if (kind === 'missing-ref')
        throw new UsageError(
          `POSTHOG_APP_TAG=${opts.ref} does not exist in ${opts.repoUrl}: use a tag, a branch, latest or a commit of that repository`,
        )
      if (kind === 'missing-repo')
        throw new UsageError(
          `POSTHOG_REPO_URL=${opts.repoUrl} is not a git repository: fix POSTHOG_REPO_URL in .env`,
        )
      if (kind !== 'network' && e instanceof WireError)
        throw new WireRefused(
          `${what} failed: ${lastLine(stderr)}`,
          'run again with HOMELAB_FETCH_MODE=sparse to fetch with stock git instead',
        )
      if (kind !== 'network')
        throw new RuntimeFailure(`${what} failed: ${lastLine(stderr)}`, `see 'git -C ${opts.dir} status'`)
      if (attempt >= attempts)
        throw new RuntimeFailure(
          `${what} from ${opts.repoUrl} failed after ${attempts} attempt${attempts > 1 ? 's' : ''}: ${lastLine(stderr)}`,
          'check the network connection (and a proxy, if you need one) and run it again',
        )
      const delay = delays.next().value as number
      opts.log?.(`${what}: network error (${lastLine(stderr)}); retrying in ${Math.round(delay / 100) / 10}s`)
      await sleep(delay)
    }
  }
}

interface ExistingState {
  usable: boolean
  reason?: string
  commit?: string
}

/** Is `dir` our own checkout of `repoUrl`? (Not a parent repository, not another remote, not corrupt.) */
export async function inspectCheckout(
  dir: string,
  repoUrl: string,
  mode?: FetchMode,
): Promise<ExistingState> {
  if (!fs.existsSync(path.join(dir, '.git'))) return { usable: false, reason: 'it is not a git checkout' }
  const top = await gitNothrow(dir, ['rev-parse', '--show-toplevel'])
  if (!top.ok || path.resolve(top.stdout.trim()) !== fs.realpathSync(dir))
    return { usable: false, reason: 'it is not a git checkout' }
  const url = await gitNothrow(dir, ['config', '--get', 'remote.origin.url'])
  if (url.stdout.trim() !== repoUrl)
    return { usable: false, reason: `it was fetched from ${url.stdout.trim() || 'an unknown remote'}` }
  if (mode && (await checkoutMode(dir)) !== mode)
    return {
      usable: false,
      reason: `it was fetched the ${await checkoutMode(dir)} way and this run fetches the ${mode} way`,
    }
  const head = await gitNothrow(dir, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'])
  if (!head.ok) return { usable: true }
  const tree = await gitNothrow(dir, ['cat-file', '-e', 'HEAD^{tree}'])
  if (!tree.ok) return { usable: false, reason: 'its git data is corrupt' }
  return { usable: true, commit: head.stdout.trim() }
}

function moveAside(dir: string): string {
  let dest = `${dir}.broken-${timestamp()}`
  for (let i = 1; fs.existsSync(dest); i++) dest = `${dir}.broken-${timestamp()}-${i}`
  fs.renameSync(dir, dest)
  return dest
}

async function initCheckout(dir: string, repoUrl: string, mode: FetchMode): Promise<void> {
  fs.mkdirSync(dir, { recursive: true })
  await git(dir, ['init', '--quiet'])
  await git(dir, ['remote', 'add', 'origin', repoUrl])
  // A partial clone: objects left out by the filter are fetched from origin when needed.
  await git(dir, ['config', 'remote.origin.promisor', 'true'])
  await git(dir, ['config', 'remote.origin.partialclonefilter', 'blob:none'])
  await git(dir, ['config', 'core.sparseCheckout', 'true'])
  await git(dir, ['config', 'core.sparseCheckoutCone', 'false'])
  await git(dir, ['config', 'advice.detachedHead', 'false'])
  await git(dir, ['config', 'homelab.fetchmode', mode])
}

function sparseFile(dir: string): string {
  return path.join(dir, '.git', 'info', 'sparse-checkout')
}

function currentPatterns(dir: string): string[] {
  try {
    return fs.readFileSync(sparseFile(dir), 'utf8').split('\n').filter(Boolean)
  } catch {
    return []
  }
}

function writePatterns(dir: string, patterns: string[]): void {
  fs.mkdirSync(path.dirname(sparseFile(dir)), { recursive: true })
  fs.writeFileSync(sparseFile(dir), `${patterns.join('\n')}\n`)
}

/**
 * Fetches `opts.ref` (depth 1, no blobs) and checks it out with `opts.paths` (plus the paths the
 * checkout already had, so files that stay are not rewritten) as the sparse set.
 */
export async function fetchPosthog(opts: FetchOptions): Promise<FetchResult> {
  const refspec = refspecFor(opts.ref)
  // An existing checkout keeps the way it was fetched, unless HOMELAB_FETCH_MODE says otherwise.
  const forced = forcedMode()
  let mode = forced ?? fetchModeFor(opts.repoUrl)
  let fresh = false
  let movedAside: string | undefined
  let previousCommit: string | undefined
  if (fs.existsSync(opts.dir)) {
    const state = await inspectCheckout(opts.dir, opts.repoUrl, forced)
    if (!state.usable) {
      movedAside = moveAside(opts.dir)
      opts.log?.(`${opts.dir} is unusable (${state.reason}); moved it aside to ${movedAside}`)
    } else {
      previousCommit = state.commit
      mode = await checkoutMode(opts.dir)
    }
  }
  if (!fs.existsSync(opts.dir)) {
    await initCheckout(opts.dir, opts.repoUrl, mode)
    fresh = true
  }
  if (mode === 'precise') {
    try {
      const commit = await preciseFetch(opts)
      return { commit, previousCommit, fresh, movedAside }
    } catch (e) {
      if (!(e instanceof WireRefused) || !fresh || forced) throw e
      // A server that will not answer the precise requests still serves stock git.
      opts.log?.(`the server refused the precise fetch (${e.message}); fetching with stock git instead`)
      fs.rmSync(opts.dir, { recursive: true, force: true }) // created by this run moments ago
      await initCheckout(opts.dir, opts.repoUrl, 'sparse')
    }
  }
  opts.log?.(`fetching PostHog ${opts.ref} from ${opts.repoUrl} (shallow, without blobs)`)
  await networkStep(opts, `fetching ${opts.ref}`, () =>
    git(
      opts.dir,
      [
        'fetch',
        '--quiet',
        '--depth=1',
        '--filter=blob:none',
        '--no-tags',
        '--end-of-options',
        'origin',
        refspec,
      ],
      NETWORK_TIMEOUT,
    ),
  )
  const commit = (await git(opts.dir, ['rev-parse', '--verify', 'FETCH_HEAD^{commit}'])).stdout.trim()
  writePatterns(opts.dir, sparsePatterns([...currentPatterns(opts.dir).map(unpattern), ...opts.paths]))
  if (commit !== previousCommit) {
    await networkStep(opts, `checking out ${opts.ref}`, () =>
      git(opts.dir, ['checkout', '--quiet', '--detach', commit, '--'], NETWORK_TIMEOUT),
    )
  }
  return { commit, previousCommit, fresh, movedAside }
}

function unpattern(p: string): string {
  return p.replace(/^\//, '').replace(/\\(.)/g, '$1')
}

/** Narrows or widens the working tree to exactly `paths`, fetching the blobs that newly appear. */
export async function setSparsePaths(opts: FetchOptions): Promise<void> {
  if ((await checkoutMode(opts.dir)) === 'precise') {
    const commit = (await git(opts.dir, ['rev-parse', '--verify', 'HEAD^{commit}'])).stdout.trim()
    await networkStep(opts, 'fetching the mounted files', () => materialize(opts, commit))
    return
  }
  const wanted = sparsePatterns(opts.paths)
  const current = currentPatterns(opts.dir)
  if (wanted.join('\n') === current.join('\n')) return
  writePatterns(opts.dir, wanted)
  await networkStep(opts, 'fetching the mounted files', () =>
    git(opts.dir, ['sparse-checkout', 'reapply'], NETWORK_TIMEOUT),
  )
}

// ---------------------------------------------------------------------------------------------
// The precise way (http(s) remotes): ask the server, through git protocol v2, for exactly the
// objects on the needed paths, one request per tree level, and write the files ourselves. A
// sparse `git checkout` needs every tree of the commit to build its index (sparse index needs
// cone mode, which always includes every file at the root); here only the trees on the needed
// paths travel. The checkout has no index: HEAD, .git/shallow and .git/homelab-files.json
// (path -> blob) describe it.

export type FetchMode = 'precise' | 'sparse'

const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']

/**
 * Precise for plain http(s) URLs; the sparse way (stock git, which honours proxies, credential
 * helpers and ssh) otherwise, or when HOMELAB_FETCH_MODE=sparse.
 */
export function fetchModeFor(url: string, env: NodeJS.ProcessEnv = process.env): FetchMode {
  const forced = forcedMode(env)
  if (forced) return forced
  if (!/^https?:\/\/[^/@]+\//.test(url)) return 'sparse'
  return PROXY_VARS.some((k) => env[k]) ? 'sparse' : 'precise'
}

function forcedMode(env: NodeJS.ProcessEnv = process.env): FetchMode | undefined {
  const v = env.HOMELAB_FETCH_MODE
  if (v === undefined || v === '') return undefined
  if (v === 'precise' || v === 'sparse') return v
  throw new UsageError(
    `HOMELAB_FETCH_MODE=${v} is not a fetch mode: use precise or sparse, or leave it unset`,
  )
}

/** The precise fetch was refused by the server (not a network failure). */
export class WireRefused extends RuntimeFailure {}

async function checkoutMode(dir: string): Promise<FetchMode> {
  const out = await gitNothrow(dir, ['config', '--get', 'homelab.fetchmode'])
  return out.stdout.trim() === 'precise' ? 'precise' : 'sparse'
}

const WIRE_TIMEOUT_MS = 15 * 60_000

async function resolveRef(opts: FetchOptions): Promise<string> {
  if (/^[0-9a-f]{40}$/.test(opts.ref)) return opts.ref
  const exact =
    opts.ref === 'latest' ? ['HEAD'] : [`refs/tags/${opts.ref}`, `refs/heads/${opts.ref}`, `refs/${opts.ref}`]
  let refs: Awaited<ReturnType<typeof lsRefs>> = []
  await networkStep(opts, `looking up ${opts.ref}`, async () => {
    refs = await lsRefs(opts.repoUrl, exact, WIRE_TIMEOUT_MS)
  })
  for (const name of exact) {
    const ref = refs.find((r) => r.name === name)
    if (ref) return ref.peeled ?? ref.oid
  }
  throw new UsageError(
    `POSTHOG_APP_TAG=${opts.ref} does not exist in ${opts.repoUrl}: use a tag, a branch, latest or a commit of that repository`,
  )
}

async function presentObjects(dir: string): Promise<Set<string>> {
  const out = await git(dir, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname)'])
  return new Set(out.stdout.split('\n').filter(Boolean))
}

async function storePack(dir: string, pack: Buffer): Promise<void> {
  if (pack.length === 0) return
  // A promisor pack: the objects it leaves out are the remote's to give, not corruption.
  await $({
    cwd: dir,
    env: gitEnv(),
    quiet: true,
    input: pack,
    timeout: '10m',
  })`git index-pack --stdin --promisor=homelab`
}

function addShallow(dir: string, commits: string[]): void {
  const file = path.join(dir, '.git', 'shallow')
  const have = new Set((fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '').split('\n').filter(Boolean))
  for (const c of commits) have.add(c)
  fs.writeFileSync(file, `${[...have].sort().join('\n')}\n`)
}

async function preciseFetch(opts: FetchOptions): Promise<string> {
  opts.log?.(`fetching PostHog ${opts.ref} from ${opts.repoUrl} (one commit, only the needed files)`)
  const commit = await resolveRef(opts)
  if (!(await presentObjects(opts.dir)).has(commit)) {
    await networkStep(opts, `fetching ${opts.ref}`, async () => {
      const got = await fetchPack(opts.repoUrl, [commit], {
        deepen: 1,
        filter: 'tree:1',
        timeoutMs: WIRE_TIMEOUT_MS,
      })
      await storePack(opts.dir, got.pack)
      addShallow(opts.dir, got.shallow)
    })
  }
  const manifest = readManifest(opts.dir)
  // Keep the paths the checkout already has until the caller sets the final list, so files that
  // stay are never removed and written again.
  const paths = [...new Set([...Object.keys(manifest.paths), ...opts.paths])]
  await networkStep(opts, `fetching the files of ${opts.ref}`, () => materialize({ ...opts, paths }, commit))
  await git(opts.dir, ['update-ref', '--no-deref', 'HEAD', commit])
  return commit
}

interface TreeEntry {
  mode: string
  type: string
  oid: string
}

interface Manifest {
  /** The paths asked for (files or directories). */
  paths: Record<string, true>
  /** Every file written: path -> blob and mode. */
  files: Record<string, TreeEntry>
}

function manifestFile(dir: string): string {
  return path.join(dir, '.git', 'homelab-files.json')
}

function readManifest(dir: string): Manifest {
  try {
    return JSON.parse(fs.readFileSync(manifestFile(dir), 'utf8')) as Manifest
  } catch {
    return { paths: {}, files: {} }
  }
}

function blobId(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
}

/**
 * Fetches what `opts.paths` need at `commit`, level by level (each round asks for every object
 * that the trees at hand show to be missing), then writes exactly those files.
 */
async function materialize(opts: FetchOptions, commit: string): Promise<void> {
  const dir = opts.dir
  const trees = new Map<string, Map<string, TreeEntry>>()
  const lsTree = async (oid: string) => {
    let entries = trees.get(oid)
    if (!entries) {
      entries = new Map()
      const out = await git(dir, ['ls-tree', '-z', oid])
      for (const rec of out.stdout.split('\0').filter(Boolean)) {
        const [meta, name] = rec.split('\t') as [string, string]
        const [mode, type, id] = meta.split(' ') as [string, string, string]
        entries.set(name, { mode, type, oid: id })
      }
      trees.set(oid, entries)
    }
    return entries
  }
  const root = (await git(dir, ['rev-parse', `${commit}^{tree}`])).stdout.trim()
  for (;;) {
    const present = await presentObjects(dir)
    const missing = new Set<string>()
    const files = new Map<string, TreeEntry>()
    const whole = async (oid: string, prefix: string): Promise<void> => {
      if (!present.has(oid)) return void missing.add(oid)
      for (const [name, e] of await lsTree(oid)) {
        if (e.type === 'tree') await whole(e.oid, `${prefix}/${name}`)
        else if (e.type === 'blob')
          present.has(e.oid) ? files.set(`${prefix}/${name}`, e) : missing.add(e.oid)
      }
    }
    for (const p of opts.paths) {
      const parts = p.split('/').filter(Boolean)
      let tree = root
      for (let i = 0; i < parts.length; i++) {
        if (!present.has(tree)) {
          missing.add(tree)
          break
        }
        const e = (await lsTree(tree)).get(parts[i]!)
        if (!e) break // not in this version; the caller reports it
        if (i < parts.length - 1) {
          if (e.type !== 'tree') break
          tree = e.oid
        } else if (e.type === 'tree') await whole(e.oid, p)
        else if (e.type === 'blob') present.has(e.oid) ? files.set(p, e) : missing.add(e.oid)
      }
    }
    if (missing.size === 0) return writeFiles(dir, opts.paths, files)
    const got = await fetchPack(opts.repoUrl, [...missing].sort(), {
      filter: 'tree:0',
      timeoutMs: WIRE_TIMEOUT_MS,
    })
    await storePack(dir, got.pack)
    const after = await presentObjects(dir)
    if ([...missing].some((oid) => !after.has(oid)))
      throw new WireError(`the server did not send the objects asked for (filter or want refused)`, false)
  }
}

async function writeFiles(dir: string, paths: string[], files: Map<string, TreeEntry>): Promise<void> {
  const old = readManifest(dir)
  const changedLocally = (rel: string, expected: string) => {
    const file = path.join(dir, rel)
    if (!fs.existsSync(file)) return false
    const stat = fs.lstatSync(file)
    const data = stat.isSymbolicLink() ? Buffer.from(fs.readlinkSync(file)) : fs.readFileSync(file)
    return blobId(data) !== expected
  }
  for (const [rel, e] of Object.entries(old.files))
    if (changedLocally(rel, e.oid))
      throw new RuntimeFailure(
        `${path.join(dir, rel)} was changed by hand`,
        'move your change to STACK_DIR/docker-compose.local.yml (e.g. mount your own copy), then undo it and run again',
      )
  for (const [rel, e] of files) {
    const file = path.join(dir, rel)
    const data = (
      await $({ cwd: dir, env: gitEnv(), quiet: true, timeout: LOCAL_TIMEOUT })`git cat-file blob ${e.oid}`
    ).buffer()
    if (e.mode === '120000') {
      if (
        fs.existsSync(file) &&
        fs.lstatSync(file).isSymbolicLink() &&
        fs.readlinkSync(file) === data.toString()
      )
        continue
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.rmSync(file, { force: true })
      fs.symlinkSync(data.toString(), file)
    } else writeFileAtomic(file, data, { mode: e.mode === '100755' ? 0o755 : 0o644 })
  }
  for (const rel of Object.keys(old.files)) {
    if (files.has(rel)) continue
    fs.rmSync(path.join(dir, rel), { force: true })
    for (let d = path.dirname(rel); d !== '.' && d !== '/'; d = path.dirname(d)) {
      const abs = path.join(dir, d)
      if (!fs.existsSync(abs) || fs.readdirSync(abs).length > 0) break
      fs.rmdirSync(abs)
    }
  }
  const manifest: Manifest = {
    paths: Object.fromEntries(paths.map((p) => [p, true as const])),
    files: Object.fromEntries([...files].sort(([a], [b]) => a.localeCompare(b))),
  }
  fs.writeFileSync(manifestFile(dir), `${JSON.stringify(manifest, null, 1)}\n`)
}
