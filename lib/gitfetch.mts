// Getting PostHog's source at one ref into STACK_DIR/posthog, fetching as little as possible:
// shallow (depth 1), partial (no blobs until checkout needs them) and sparse (non-cone
// patterns naming exactly the files the stack reads). A re-run moves the same checkout to the
// new ref; a broken or foreign checkout is moved aside, never deleted.
import fs from 'node:fs'
import path from 'node:path'
import { $, expBackoff, type ProcessOutput, sleep } from 'zx'
import { RuntimeFailure, UsageError } from './cli.mts'
import { isGitRefName } from './env.mts'
import { timestamp } from './fsutil.mts'

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
async function networkStep(
  opts: FetchOptions,
  what: string,
  step: () => Promise<ProcessOutput>,
): Promise<void> {
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
      const stderr = (e as ProcessOutput).stderr ?? String(e)
      const kind = classifyGitError(stderr)
      if (kind === 'missing-ref')
        throw new UsageError(
          `POSTHOG_APP_TAG=${opts.ref} does not exist in ${opts.repoUrl}: use a tag, a branch, latest or a commit of that repository`,
        )
      if (kind === 'missing-repo')
        throw new UsageError(
          `POSTHOG_REPO_URL=${opts.repoUrl} is not a git repository: fix POSTHOG_REPO_URL in .env`,
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
export async function inspectCheckout(dir: string, repoUrl: string): Promise<ExistingState> {
  if (!fs.existsSync(path.join(dir, '.git'))) return { usable: false, reason: 'it is not a git checkout' }
  const top = await gitNothrow(dir, ['rev-parse', '--show-toplevel'])
  if (!top.ok || path.resolve(top.stdout.trim()) !== fs.realpathSync(dir))
    return { usable: false, reason: 'it is not a git checkout' }
  const url = await gitNothrow(dir, ['config', '--get', 'remote.origin.url'])
  if (url.stdout.trim() !== repoUrl)
    return { usable: false, reason: `it was fetched from ${url.stdout.trim() || 'an unknown remote'}` }
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

async function initCheckout(dir: string, repoUrl: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true })
  await git(dir, ['init', '--quiet'])
  await git(dir, ['remote', 'add', 'origin', repoUrl])
  // A partial clone: objects left out by the filter are fetched from origin when needed.
  await git(dir, ['config', 'remote.origin.promisor', 'true'])
  await git(dir, ['config', 'remote.origin.partialclonefilter', 'blob:none'])
  await git(dir, ['config', 'core.sparseCheckout', 'true'])
  await git(dir, ['config', 'core.sparseCheckoutCone', 'false'])
  await git(dir, ['config', 'advice.detachedHead', 'false'])
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
  let fresh = false
  let movedAside: string | undefined
  let previousCommit: string | undefined
  if (fs.existsSync(opts.dir)) {
    const state = await inspectCheckout(opts.dir, opts.repoUrl)
    if (!state.usable) {
      movedAside = moveAside(opts.dir)
      opts.log?.(`${opts.dir} is unusable (${state.reason}); moved it aside to ${movedAside}`)
    } else previousCommit = state.commit
  }
  if (!fs.existsSync(opts.dir)) {
    await initCheckout(opts.dir, opts.repoUrl)
    fresh = true
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
  const wanted = sparsePatterns(opts.paths)
  const current = currentPatterns(opts.dir)
  if (wanted.join('\n') === current.join('\n')) return
  writePatterns(opts.dir, wanted)
  await networkStep(opts, 'fetching the mounted files', () =>
    git(opts.dir, ['sparse-checkout', 'reapply'], NETWORK_TIMEOUT),
  )
}
