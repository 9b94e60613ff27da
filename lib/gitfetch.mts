// Getting PostHog's source at one ref into STACK_DIR/posthog, fetching as little as possible,
// one of two ways: precisely (lib/gitprecise.mts: git protocol v2, only the objects on the
// needed paths) for http(s) remotes, or with stock git (shallow, blob-less, non-cone sparse
// checkout) for ssh/file remotes, behind proxies, or when a server refuses the precise requests.
// A re-run moves the same checkout to the new ref; a broken or foreign checkout is moved aside,
// never deleted.
import fs from 'node:fs'
import path from 'node:path'
import { UsageError } from './cli.mts'
import { isGitRefName } from './env.mts'
import { timestamp } from './fsutil.mts'
import { type FetchOptions, git, gitNothrow, NETWORK_TIMEOUT, networkStep, WireRefused } from './gitcli.mts'
import { materialize, preciseFetch } from './gitprecise.mts'

export { classifyGitError, type FailureKind, type FetchOptions } from './gitcli.mts'

export interface FetchResult {
  commit: string
  /** The commit checked out before, if the checkout already existed. */
  previousCommit?: string
  /** A new checkout was created (first run, or the old one was moved aside). */
  fresh: boolean
  /** Where a broken or foreign checkout was moved. */
  movedAside?: string
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
  // The stock-git way is a partial clone: git fetches what the filter left out when a checkout
  // needs it. The precise way fetches everything itself; without a promisor remote a stray
  // `git status` in the checkout fails fast instead of fetching the missing trees one by one.
  await git(dir, ['config', 'remote.origin.promisor', mode === 'sparse' ? 'true' : 'false'])
  if (mode === 'sparse') await git(dir, ['config', 'remote.origin.partialclonefilter', 'blob:none'])
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
// Which way to fetch.

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

async function checkoutMode(dir: string): Promise<FetchMode> {
  const out = await gitNothrow(dir, ['config', '--get', 'homelab.fetchmode'])
  return out.stdout.trim() === 'precise' ? 'precise' : 'sparse'
}
