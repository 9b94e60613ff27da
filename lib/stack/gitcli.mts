// Running stock git for the PostHog checkout: a clean environment, credentials kept off every
// command line and out of every file, timeouts on every call, and network steps with bounded
// retries whose failures end in one clear line. Only failures that may pass (no answer, a 5xx,
// a dropped connection) are retried; a refusal (4xx, a filter the server does not allow) is not.
import { expBackoff, sleep } from 'zx'
import { parseDuration, RuntimeFailure, UsageError } from '../core/cli.mts'
import { CommandFailed, type CommandResult, type Duration, describeExit, run } from '../core/exec.mts'

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

export const LOCAL_TIMEOUT: Duration = '60s'
export const NETWORK_TIMEOUT: Duration = '15m'

// ---------------------------------------------------------------------------------------------
// The remote, with its credential apart.

export interface Remote {
  /** The URL git is given and records: no user name or password in it. */
  url: string
  /** GIT_CONFIG_* variables handing git the credential (an Authorization header), if any. */
  env: Record<string, string>
}

/**
 * Splits `https://user:TOKEN@host/repo` into the URL without userinfo and an Authorization
 * header git sends for that host only, passed in the environment (GIT_CONFIG_COUNT/KEY/VALUE):
 * the environment of a process is readable by its owner alone, unlike its argv (`ps`) or
 * `.git/config` (0644). Other URLs (ssh, file, no userinfo) are used as they are.
 */
export function remoteFor(repoUrl: string, base: NodeJS.ProcessEnv = process.env): Remote {
  let parsed: URL
  try {
    parsed = new URL(repoUrl)
  } catch {
    return { url: repoUrl, env: {} }
  }
  if (!/^https?:$/.test(parsed.protocol) || (!parsed.username && !parsed.password))
    return { url: repoUrl, env: {} }
  const user = decodeURIComponent(parsed.username)
  const password = decodeURIComponent(parsed.password)
  parsed.username = ''
  parsed.password = ''
  const basic = Buffer.from(`${user}:${password}`).toString('base64')
  const first = Number.parseInt(base.GIT_CONFIG_COUNT ?? '0', 10) || 0
  return {
    url: parsed.toString(),
    env: {
      GIT_CONFIG_COUNT: String(first + 1),
      [`GIT_CONFIG_KEY_${first}`]: `http.${parsed.origin}/.extraHeader`,
      [`GIT_CONFIG_VALUE_${first}`]: `Authorization: Basic ${basic}`,
    },
  }
}

/** A child environment for git: no prompts, stable messages, nothing inherited that redirects git. */
export function gitEnv(remote?: Remote): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR'])
    delete env[k]
  return { ...env, ...remote?.env }
}

export interface GitOptions {
  timeout?: Duration
  remote?: Remote
  nothrow?: boolean
}

export function git(dir: string, args: string[], opts: GitOptions = {}): Promise<CommandResult> {
  return run('git', args, {
    cwd: dir,
    env: gitEnv(opts.remote),
    timeout: opts.timeout ?? LOCAL_TIMEOUT,
    nothrow: opts.nothrow,
  })
}

export function gitNothrow(dir: string, args: string[]): Promise<CommandResult> {
  return git(dir, args, { nothrow: true })
}

// ---------------------------------------------------------------------------------------------
// What a failure means.

export type FailureKind = 'network' | 'refused' | 'denied' | 'missing-ref' | 'missing-repo' | 'other'

/** A network step that kept failing the way networks fail: the caller may go on without it. */
export class NetworkFailure extends RuntimeFailure {}

export function classifyGitError(stderr: string): FailureKind {
  // Timeouts and rate limits are answers that may change; every other 4xx will not.
  if (/returned error: (408|429)|HTTP (408|429)/i.test(stderr)) return 'network'
  if (
    /authentication failed|could not read (username|password)|terminal prompts disabled|returned error: 40[13]|HTTP 40[13]|permission denied \(publickey|host key verification failed/i.test(
      stderr,
    )
  )
    return 'denied'
  if (/couldn't find remote ref|no such remote ref|not our ref/i.test(stderr)) return 'missing-ref'
  if (
    /repository '.*' not found|does not appear to be a git repository|returned error: 404|HTTP 404/i.test(
      stderr,
    )
  )
    return 'missing-repo'
  if (
    /unadvertised object|remote error|not supported|returned error: 4\d\d|HTTP 4\d\d|filter .* not|does not support/i.test(
      stderr,
    )
  )
    return 'refused'
  if (
    /could not resolve|failed to connect|couldn't connect|connection (refused|reset|timed out)|timed out|unable to access|early EOF|RPC failed|remote end hung up|HTTP 5\d\d|error: 5\d\d|could not read from remote|unexpected disconnect|transfer closed|empty reply|recv failure|send failure|ssl|gnutls|network is unreachable/i.test(
      stderr,
    )
  )
    return 'network'
  return 'other'
}

function describeFailure(e: unknown): string {
  if (!(e instanceof CommandFailed)) return String(e)
  const out = e.result
  // A git call that outlives its timeout is killed: no stderr, only the signal.
  if (out.timedOut && !out.stderr.trim()) return `git timed out (${describeExit(out)})`
  return out.stderr
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => !/^\s*$/.test(l) && !/^warning: /.test(l))
      .at(-1) ?? ''
  )
}

function retryCount(opts: Pick<FetchOptions, 'retries'>): number {
  const fromEnv = Number.parseInt(process.env.HOMELAB_FETCH_RETRIES ?? '', 10)
  return Math.max(1, opts.retries ?? (Number.isFinite(fromEnv) ? fromEnv : 4))
}

export type StepOptions = Pick<FetchOptions, 'repoUrl' | 'ref' | 'dir' | 'log' | 'retries' | 'backoff'>

/**
 * Runs a network step with bounded retries and exponential backoff (zx expBackoff: base,
 * doubling, at most 30 s). Only network errors are retried; a missing ref or repository is bad
 * configuration (exit 2), a refusal is final (exit 1). Failures become one clear line.
 */
export async function networkStep<T>(opts: StepOptions, what: string, step: () => Promise<T>): Promise<T> {
  const attempts = retryCount(opts)
  const base = parseDuration(
    opts.backoff ?? process.env.HOMELAB_FETCH_BACKOFF ?? '2s',
    'HOMELAB_FETCH_BACKOFF',
  )
  const delays = expBackoff('30s', base)
  const url = remoteFor(opts.repoUrl).url
  for (let attempt = 1; ; attempt++) {
    try {
      return await step()
    } catch (e) {
      if (e instanceof UsageError || e instanceof RuntimeFailure) throw e
      const stderr = describeFailure(e)
      const line = lastLine(stderr)
      const kind = classifyGitError(stderr)
      if (kind === 'missing-ref')
        throw new UsageError(
          `POSTHOG_APP_TAG=${opts.ref} does not exist in ${url}: use a tag, a branch, latest or a commit of that repository`,
        )
      if (kind === 'missing-repo')
        throw new UsageError(`POSTHOG_REPO_URL=${url} is not a git repository: fix POSTHOG_REPO_URL in .env`)
      if (kind === 'denied')
        throw new RuntimeFailure(
          `${what} from ${url} was refused: ${line}`,
          'check POSTHOG_REPO_URL in .env (a private repository needs https://user:TOKEN@host/...)',
        )
      if (kind === 'refused')
        throw new RuntimeFailure(
          `${what} from ${url} was refused by the server: ${line}`,
          /unadvertised/.test(line)
            ? 'this server sends only commits a branch or tag points at: set POSTHOG_APP_TAG to a tag or branch'
            : 'the server does not allow a shallow, blob-less fetch; use a git server that does (GitHub, GitLab, git 2.20+)',
        )
      if (kind !== 'network')
        throw new RuntimeFailure(`${what} failed: ${line}`, `see 'git -C ${opts.dir} status'`)
      if (attempt >= attempts)
        throw new NetworkFailure(
          `${what} from ${url} failed after ${attempts} attempt${attempts > 1 ? 's' : ''}: ${line}`,
          'check the network connection (and a proxy, if you need one) and run it again',
        )
      const delay = delays.next().value as number
      opts.log?.(`${what}: network error (${line}); retrying in ${Math.round(delay / 100) / 10}s`)
      await sleep(delay)
    }
  }
}
