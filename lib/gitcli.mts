// Running git for the PostHog checkout: a clean environment, timeouts on every call, and
// network steps with bounded retries whose failures end in one clear line.
import { expBackoff, sleep } from 'zx'
import { parseDuration, RuntimeFailure, UsageError } from './cli.mts'
import { CommandFailed, type CommandResult, type Duration, describeExit, run } from './exec.mts'
import { WireError } from './gitwire.mts'

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

/** A child environment for git: no prompts, stable messages, nothing inherited that redirects git. */
export function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_COMMON_DIR'])
    delete env[k]
  return env
}

export function git(dir: string, args: string[], timeout = LOCAL_TIMEOUT): Promise<CommandResult> {
  return run('git', args, { cwd: dir, env: gitEnv(), timeout })
}

export function gitNothrow(dir: string, args: string[]): Promise<CommandResult> {
  return run('git', args, { cwd: dir, env: gitEnv(), nothrow: true, timeout: LOCAL_TIMEOUT })
}

/** The precise fetch was refused by the server (not a network failure). */
export class WireRefused extends RuntimeFailure {}

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

function describeFailure(e: unknown): string {
  if (e instanceof WireError) return e.message
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
export async function networkStep(
  opts: FetchOptions,
  what: string,
  step: () => Promise<unknown>,
): Promise<void> {
  const attempts = retryCount(opts)
  const base = parseDuration(
    opts.backoff ?? process.env.HOMELAB_FETCH_BACKOFF ?? '2s',
    'HOMELAB_FETCH_BACKOFF',
  )
  const delays = expBackoff('30s', base)
  for (let attempt = 1; ; attempt++) {
    try {
      await step()
      return
    } catch (e) {
      if (e instanceof UsageError || e instanceof RuntimeFailure) throw e
      const stderr = describeFailure(e)
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
