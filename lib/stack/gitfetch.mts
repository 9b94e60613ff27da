// Getting PostHog's source at one ref into STACK_DIR/posthog with stock git, fetching as little
// as possible: one commit (depth 1) without blobs (`--filter=blob:none`, which every major git
// server allows), checked out sparsely (non-cone patterns) on exactly the needed paths, whose
// blobs git then fetches in one batch. Stock git negotiates with any server (protocol v0 or v2,
// GitHub's filter policy, proxies, ssh, file).
//
// Interruptions (Ctrl-C, kill -9, a power cut) never leave a checkout that a later run takes for
// good: a first checkout is built in a folder beside STACK_DIR/posthog and renamed into place
// once complete; an existing checkout is changed in place with a marker file saying so, and a run
// that finds the marker finishes the change. A broken or foreign checkout is moved aside, never
// deleted.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sleep } from 'zx'
import { RuntimeFailure, UsageError } from '../core/cli.mts'
import { isGitRefName } from '../core/env.mts'
import { timestamp } from '../core/fs.mts'
import {
  type FetchOptions,
  git,
  gitNothrow,
  NETWORK_TIMEOUT,
  networkStep,
  type Remote,
  remoteFor,
  type StepOptions,
} from './gitcli.mts'

export {
  classifyGitError,
  type FailureKind,
  type FetchOptions,
  NetworkFailure,
  remoteFor,
} from './gitcli.mts'

export interface FetchResult {
  commit: string
  /** The commit checked out before, if the checkout already existed. */
  previousCommit?: string
  /** A new checkout was created (first run, or the old one was moved aside). */
  fresh: boolean
  /** Where a broken or foreign checkout was moved. */
  movedAside?: string
}

const COMMIT = /^[0-9a-f]{40}$/

export function isCommitId(ref: string): boolean {
  return COMMIT.test(ref)
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

function unpattern(p: string): string {
  return p.replace(/^\//, '').replace(/\\(.)/g, '$1')
}

// ---------------------------------------------------------------------------------------------
// The checkout's own configuration, and how to tell a complete checkout.

/** Set before the first fetch: a partial, sparse clone whose missing blobs come from origin. */
function checkoutConfig(url: string): [string, string][] {
  return [
    ['remote.origin.url', url],
    ['remote.origin.promisor', 'true'],
    ['remote.origin.partialclonefilter', 'blob:none'],
    ['core.sparseCheckout', 'true'],
    ['core.sparseCheckoutCone', 'false'],
  ]
}

/** Written before the working tree of an existing checkout changes, removed once it matches. */
const CHANGING = 'homelab-changing'

function markerFile(dir: string): string {
  return path.join(dir, '.git', CHANGING)
}

interface ExistingState {
  usable: boolean
  reason?: string
  commit?: string
}

/** The checkout's own configuration (keys lower-cased, as git prints them). */
async function localConfig(dir: string): Promise<Map<string, string>> {
  const out = await gitNothrow(dir, ['config', '--local', '--list', '-z'])
  return new Map(
    out.stdout
      .split('\0')
      .filter(Boolean)
      .map((entry) => {
        const nl = entry.indexOf('\n')
        return nl < 0 ? [entry.toLowerCase(), ''] : [entry.slice(0, nl).toLowerCase(), entry.slice(nl + 1)]
      }),
  )
}

/**
 * Is `dir` our own, complete checkout of `url` (the URL without credentials)? Not a parent
 * repository, not another remote, not one fetched another way, not one left half-configured.
 */
export async function inspectCheckout(dir: string, url: string): Promise<ExistingState> {
  if (!fs.existsSync(path.join(dir, '.git'))) return { usable: false, reason: 'it is not a git checkout' }
  const top = await gitNothrow(dir, ['rev-parse', '--show-toplevel'])
  if (!top.ok || path.resolve(top.stdout.trim()) !== fs.realpathSync(dir))
    return { usable: false, reason: 'it is not a git checkout' }
  const config = await localConfig(dir)
  const origin = config.get('remote.origin.url') ?? ''
  if (origin !== url)
    return { usable: false, reason: `it was fetched from ${remoteFor(origin).url || 'an unknown remote'}` }
  if (config.get('homelab.fetchmode') === 'precise')
    return { usable: false, reason: 'it was fetched by an older version of this toolkit, without an index' }
  for (const [key, value] of checkoutConfig(url))
    if (config.get(key.toLowerCase()) !== value)
      return {
        usable: false,
        reason: `its git configuration is incomplete (${key}): an interrupted first fetch`,
      }
  const head = await gitNothrow(dir, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'])
  if (!head.ok) return { usable: false, reason: 'it has no commit checked out: an interrupted first fetch' }
  // Every tree comes with the commit (blob:none), so this reads a local object and fetches nothing.
  const tree = await gitNothrow(dir, ['cat-file', '-e', 'HEAD^{tree}'])
  if (!tree.ok) return { usable: false, reason: 'its git data is corrupt' }
  return { usable: true, commit: head.stdout.trim() }
}

/** The commit checked out in `dir`, if it is a git checkout with one. */
export async function checkoutHead(dir: string): Promise<string | undefined> {
  if (!fs.existsSync(path.join(dir, '.git'))) return undefined
  const head = await gitNothrow(dir, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'])
  return head.ok ? head.stdout.trim() : undefined
}

function moveAside(dir: string): string | undefined {
  if (fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length === 0) {
    fs.rmdirSync(dir) // nothing in it to keep
    return undefined
  }
  let dest = `${dir}.broken-${timestamp()}`
  for (let i = 1; fs.existsSync(dest); i++) dest = `${dir}.broken-${timestamp()}-${i}`
  fs.renameSync(dir, dest)
  // A checkout made by an older version kept a credential in the URL of its config.
  const config = path.join(dest, '.git', 'config')
  if (fs.existsSync(config)) fs.chmodSync(config, 0o600)
  return dest
}

// ---------------------------------------------------------------------------------------------
// Building a first checkout aside.

function incomingPrefix(dir: string): string {
  return path.join(path.dirname(dir), `.${path.basename(dir)}.incoming-`)
}

/**
 * Removes folders where an earlier, interrupted run was building a first checkout. The caller
 * holds the stack's lock, so none of them is in use by a live run of ours; a git process the
 * interrupted run left behind may still write into one, so a removal that fails is left for later.
 */
function removeIncoming(dir: string): void {
  const prefix = incomingPrefix(dir)
  const parent = path.dirname(dir)
  if (!fs.existsSync(parent)) return
  for (const name of fs.readdirSync(parent)) {
    const full = path.join(parent, name)
    if (!full.startsWith(prefix)) continue
    try {
      fs.rmSync(full, { recursive: true, force: true })
    } catch {
      // retried by the next run
    }
  }
}

async function fetchCommit(opts: StepOptions, remote: Remote, dir: string): Promise<string> {
  const refspec = refspecFor(opts.ref)
  await networkStep(opts, `fetching ${opts.ref}`, () =>
    git(
      dir,
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
      { timeout: NETWORK_TIMEOUT, remote },
    ),
  )
  return (await git(dir, ['rev-parse', '--verify', 'FETCH_HEAD^{commit}'])).stdout.trim()
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

/** Makes the working tree exactly `commit` on `patterns`; git fetches the blobs that appear, in one batch. */
async function checkout(opts: StepOptions, remote: Remote, dir: string, commit: string, patterns: string[]) {
  writePatterns(dir, patterns)
  await networkStep(opts, `checking out ${opts.ref}`, () =>
    git(dir, ['checkout', '--quiet', '--force', '--detach', commit, '--'], {
      timeout: NETWORK_TIMEOUT,
      remote,
    }),
  )
}

async function buildAside(opts: FetchOptions, remote: Remote): Promise<{ incoming: string; commit: string }> {
  const incoming = `${incomingPrefix(opts.dir)}${process.pid}`
  fs.rmSync(incoming, { recursive: true, force: true })
  fs.mkdirSync(incoming, { recursive: true })
  try {
    await git(incoming, ['init', '--quiet'])
    for (const [key, value] of checkoutConfig(remote.url)) await git(incoming, ['config', key, value])
    opts.log?.(`fetching PostHog ${opts.ref} from ${remote.url} (one commit, without file contents)`)
    const commit = await fetchCommit(opts, remote, incoming)
    await checkout(opts, remote, incoming, commit, sparsePatterns(opts.paths))
    return { incoming, commit }
  } catch (e) {
    fs.rmSync(incoming, { recursive: true, force: true })
    throw e
  }
}

// ---------------------------------------------------------------------------------------------
// Changing an existing checkout in place.

/**
 * Lock files in .git were left by a git that an interrupted run started. A git the interrupted
 * run left behind may still be finishing (kill -9 of the runner alone): give a fresh lock a
 * moment to go away before removing it.
 */
async function clearStaleLocks(dir: string): Promise<void> {
  const gitDir = path.join(dir, '.git')
  const locks = () => fs.readdirSync(gitDir).filter((f) => f.endsWith('.lock'))
  const fresh = () =>
    locks().filter((f) => {
      try {
        return Date.now() - fs.statSync(path.join(gitDir, f)).mtimeMs < 10_000
      } catch {
        return false
      }
    })
  for (let waited = 0; fresh().length > 0 && waited < 10_000; waited += 250) await sleep(250)
  for (const f of locks()) fs.rmSync(path.join(gitDir, f), { force: true })
}

/** Mounted files edited by hand are never overwritten: the user moves the change to their own file. */
async function refuseHandEdits(dir: string): Promise<void> {
  // Compares the working tree with the index (hashing files whose stat changed); reads no objects.
  const out = await git(dir, ['diff-files', '--name-only', '-z', '--diff-filter=MT'])
  const edited = out.stdout.split('\0').filter(Boolean)
  if (edited.length)
    throw new RuntimeFailure(
      `${path.join(dir, edited[0]!)} was changed by hand`,
      'move your change to STACK_DIR/docker-compose.local.yml (e.g. mount your own copy), then undo it and run again',
    )
}

/**
 * Brings the working tree of an existing checkout to `commit` on `patterns`. Nothing happens when
 * it is there already; otherwise a marker records that the tree is changing, so a run that finds
 * the marker knows any difference is half a change of ours, not an edit, and finishes it.
 */
async function changeInPlace(
  opts: StepOptions,
  remote: Remote,
  to: { head?: string; commit: string; patterns: string[] },
): Promise<void> {
  const { dir } = opts
  const { head, commit, patterns } = to
  const interrupted = fs.existsSync(markerFile(dir))
  if (!interrupted && head === commit && patterns.join('\n') === currentPatterns(dir).join('\n')) return
  if (!interrupted) await refuseHandEdits(dir)
  fs.writeFileSync(markerFile(dir), `${commit}\n`)
  await checkout(opts, remote, dir, commit, patterns)
  fs.rmSync(markerFile(dir), { force: true })
}

/**
 * Fetches `opts.ref` (depth 1, no blobs) and checks it out with `opts.paths` (plus the paths the
 * checkout already had, so files that stay are not removed and written again) as the sparse set.
 * A 40-hex ref that is checked out already needs no network at all.
 */
export async function fetchPosthog(opts: FetchOptions): Promise<FetchResult> {
  refspecFor(opts.ref)
  const remote = remoteFor(opts.repoUrl)
  removeIncoming(opts.dir)
  const state = fs.existsSync(opts.dir) ? await inspectCheckout(opts.dir, remote.url) : undefined
  if (!state?.usable) {
    const { incoming, commit } = await buildAside(opts, remote)
    let movedAside: string | undefined
    if (state) {
      movedAside = moveAside(opts.dir)
      if (movedAside) opts.log?.(`${opts.dir} is unusable (${state.reason}); moved it aside to ${movedAside}`)
    }
    fs.renameSync(incoming, opts.dir)
    return { commit, fresh: true, movedAside }
  }
  await clearStaleLocks(opts.dir)
  const previousCommit = state.commit
  let commit = opts.ref
  if (!(isCommitId(opts.ref) && opts.ref === previousCommit)) {
    opts.log?.(`fetching PostHog ${opts.ref} from ${remote.url} (one commit, without file contents)`)
    commit = await fetchCommit(opts, remote, opts.dir)
  }
  const patterns = sparsePatterns([...currentPatterns(opts.dir).map(unpattern), ...opts.paths])
  await changeInPlace(opts, remote, { head: previousCommit, commit, patterns })
  return { commit, previousCommit, fresh: false }
}

/** Narrows or widens the working tree to exactly `paths`, fetching the blobs that newly appear. */
export async function setSparsePaths(opts: FetchOptions): Promise<void> {
  const remote = remoteFor(opts.repoUrl)
  const head = await checkoutHead(opts.dir)
  if (!head) throw new RuntimeFailure(`${opts.dir} has no commit checked out`, 'run prepare again')
  await changeInPlace(opts, remote, { head, commit: head, patterns: sparsePatterns(opts.paths) })
}

// ---------------------------------------------------------------------------------------------
// Asking the server without a checkout.

export interface RemoteRef {
  /** The commit (an annotated tag peeled). */
  commit: string
  /** `tag` stays where it is; `branch` (and `latest`, the default branch) moves on. */
  kind: 'tag' | 'branch'
}

/** Which commit `ref` names on the server, and whether it is a tag or a branch (ls-remote). */
export async function lsRemote(opts: StepOptions): Promise<RemoteRef> {
  refspecFor(opts.ref)
  const remote = remoteFor(opts.repoUrl)
  const names =
    opts.ref === 'latest'
      ? ['HEAD']
      : [`refs/tags/${opts.ref}`, `refs/tags/${opts.ref}^{}`, `refs/heads/${opts.ref}`]
  const out = await networkStep(opts, `looking up ${opts.ref}`, () =>
    git(os.tmpdir(), ['ls-remote', '--end-of-options', remote.url, ...names], {
      timeout: NETWORK_TIMEOUT,
      remote,
    }),
  )
  const refs = new Map(
    out.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((p): p is [string, string] => p.length === 2 && COMMIT.test(p[0]!))
      .map(([oid, name]) => [name, oid]),
  )
  if (opts.ref === 'latest') {
    const head = refs.get('HEAD')
    if (head) return { commit: head, kind: 'branch' }
  } else {
    const tag = refs.get(`refs/tags/${opts.ref}`)
    if (tag) return { commit: refs.get(`refs/tags/${opts.ref}^{}`) ?? tag, kind: 'tag' }
    const branch = refs.get(`refs/heads/${opts.ref}`)
    if (branch) return { commit: branch, kind: 'branch' }
  }
  throw new UsageError(
    `POSTHOG_APP_TAG=${opts.ref} does not exist in ${remote.url}: use a tag, a branch, latest or a commit of that repository`,
  )
}

/**
 * The first-parent history of `tip` (a commit id, or a name such as HEAD), newest first, at most
 * `max` commits: commits only (`--filter=tree:0`), fetched into a scratch repository that is
 * removed afterwards.
 */
export async function firstParentHistory(opts: StepOptions, tip: string, max: number): Promise<string[]> {
  const remote = remoteFor(opts.repoUrl)
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'posthog-history-'))
  try {
    await git(scratch, ['init', '--quiet', '--bare'])
    await git(scratch, ['remote', 'add', 'origin', remote.url])
    const args = ['fetch', '--quiet', `--depth=${max}`, '--filter=tree:0', '--no-tags', '--end-of-options']
    await networkStep(opts, `fetching the history of ${opts.ref}`, () =>
      git(scratch, [...args, 'origin', tip], { timeout: NETWORK_TIMEOUT, remote }),
    )
    const out = await git(scratch, ['rev-list', '--first-parent', `--max-count=${max}`, 'FETCH_HEAD'])
    return out.stdout.split('\n').filter(Boolean)
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}
