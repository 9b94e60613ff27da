// Which PostHog version a stack runs, decided once and recorded in STACK_DIR/posthog-version.json.
//
// POSTHOG_APP_TAG=latest (or any branch) moves on upstream while the `latest` images move on their
// own schedule, so a checkout and images taken at different times can disagree (PostHog #28804,
// #38414). A branch is therefore resolved once to the newest of its first-parent commits whose app
// image exists in the registry (the node image: the newest ancestor of that commit with one, as
// PostHog's bin/helpers/resolve-hobby-node-tag.sh pairs them), and that commit is the checkout AND
// every PostHog image tag from then on. Only `upgrade` moves it. A tag or a 40-hex commit is what
// it says; a re-run for the version already prepared works offline.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from '../core/cli.mts'
import { docker } from '../core/docker.mts'
import type { Config } from '../core/env.mts'
import { readIfExists } from '../core/fs.mts'
import {
  checkoutHead,
  firstParentHistory,
  isCommitId,
  lsRemote,
  NetworkFailure,
  remoteFor,
} from './gitfetch.mts'

export const VERSION_FILE = 'posthog-version.json'
/** How many first-parent commits of a branch are searched for published images (as upstream). */
export const MAX_COMMITS = 100

export interface PosthogVersion {
  /** POSTHOG_APP_TAG as configured: a tag, a branch, `latest` or a 40-hex commit. */
  ref: string
  /** `branch` (and `latest`) is frozen at `commit`; `tag` and `commit` are fixed anyway. */
  kind: 'branch' | 'tag' | 'commit'
  /** The PostHog commit checked out in STACK_DIR/posthog. */
  commit: string
  /** Image tags: `<REGISTRY_URL>:<appTag>` and `<REGISTRY_URL>-node:<nodeTag>`. */
  appTag: string
  nodeTag: string
  /** Where it was resolved (the repository URL without credentials, the image repository). */
  repoUrl: string
  registryUrl: string
  resolvedAt: string
}

export type VersionConfig = Pick<Config, 'appTag' | 'nodeTag' | 'registryUrl' | 'repoUrl' | 'stackDir'>

export function versionFile(stackDir: string): string {
  return path.join(stackDir, VERSION_FILE)
}

export function readVersion(stackDir: string): PosthogVersion | undefined {
  const text = readIfExists(versionFile(stackDir))
  if (text === undefined) return undefined
  try {
    const v = JSON.parse(text) as PosthogVersion
    return typeof v.ref === 'string' && isCommitId(v.commit) ? v : undefined
  } catch {
    return undefined
  }
}

export function formatVersion(v: PosthogVersion): string {
  return `${JSON.stringify(v, null, 2)}\n`
}

/** Is `ref` a branch this stack has frozen (so `upgrade --to <ref>` means: resolve it again)? */
export function isFrozenBranch(stackDir: string, ref: string): boolean {
  const v = readVersion(stackDir)
  return v?.ref === ref && v.kind === 'branch'
}

/**
 * Copies the version an upgrade resolved in its staging STACK_DIR into the live one, so the live
 * prepare checks out exactly the commit the staged files and pulled images came from.
 */
export function adoptVersion(fromStackDir: string, toStackDir: string, ref: string): void {
  const staged = readVersion(fromStackDir)
  if (staged?.ref === ref) fs.copyFileSync(versionFile(fromStackDir), versionFile(toStackDir))
}

export interface Resolved {
  version: PosthogVersion
  /** What to fetch: the commit when known and servable by id, else the tag's name. */
  fetchRef: string
  /** A one-line notice (e.g. the server did not answer and the prepared version is used). */
  notice?: string
}

/** One line saying which commit runs and what moves it. */
export function describeVersion(v: PosthogVersion): string {
  const commit = v.commit.slice(0, 12)
  if (v.kind === 'branch')
    return `PostHog ${v.ref} is held at commit ${commit} (the newest with published images on ${v.resolvedAt.slice(0, 10)}); 'npx tsx scripts/upgrade.mts --to ${v.ref}' moves it`
  const what = v.kind === 'commit' ? `PostHog commit ${commit}` : `PostHog ${v.ref} (commit ${commit})`
  return `running ${what}; 'npx tsx scripts/upgrade.mts --to <version>' moves it`
}

/**
 * The version `cfg.appTag` means for this stack: the recorded one for a frozen branch (no
 * network), the commit itself for a 40-hex ref, the tag's commit for a tag, and for a branch
 * not frozen yet its latest installable commit.
 */
export async function resolveVersion(
  cfg: VersionConfig,
  log: (line: string) => void = () => {},
): Promise<Resolved> {
  const repoUrl = remoteFor(cfg.repoUrl).url
  const recorded = readVersion(cfg.stackDir)
  const same = recorded?.ref === cfg.appTag && recorded.repoUrl === repoUrl ? recorded : undefined
  const base = { ref: cfg.appTag, repoUrl, registryUrl: cfg.registryUrl }
  const keep = (v: PosthogVersion): PosthogVersion =>
    same && JSON.stringify({ ...same, resolvedAt: '' }) === JSON.stringify({ ...v, resolvedAt: '' })
      ? same
      : v
  const now = new Date().toISOString()

  if (isCommitId(cfg.appTag)) {
    const v = {
      ...base,
      kind: 'commit' as const,
      commit: cfg.appTag,
      appTag: cfg.appTag,
      nodeTag: cfg.nodeTag,
    }
    return { version: keep({ ...v, resolvedAt: now }), fetchRef: cfg.appTag }
  }
  if (same?.kind === 'branch' && same.registryUrl === cfg.registryUrl) {
    const nodeTag = cfg.nodeTag === 'latest' ? same.nodeTag : cfg.nodeTag
    return { version: keep({ ...same, nodeTag }), fetchRef: same.commit }
  }

  const step = { repoUrl: cfg.repoUrl, ref: cfg.appTag, dir: cfg.stackDir, log }
  // latest is the default branch: the history fetched by its name (HEAD) gives its head too.
  if (cfg.appTag === 'latest') return installableVersion(cfg, step, 'HEAD', log)

  const checkedOut = await checkoutHead(path.join(cfg.stackDir, 'posthog'))
  // The tag prepared before, still checked out: one quick try, and the server not answering is fine.
  const fallback = same?.kind === 'tag' && checkedOut === same.commit ? same : undefined
  let remote: Awaited<ReturnType<typeof lsRemote>>
  try {
    remote = await lsRemote({ ...step, retries: fallback ? 1 : undefined })
  } catch (e) {
    if (!(fallback && e instanceof NetworkFailure)) throw e
    const why = e.message.split(': ').at(-1)
    return {
      version: fallback,
      fetchRef: fallback.commit,
      notice: `${repoUrl} did not answer (${why}); using ${cfg.appTag} as prepared before (commit ${fallback.commit.slice(0, 12)})`,
    }
  }
  if (remote.kind === 'tag') {
    const v = {
      ...base,
      kind: 'tag' as const,
      commit: remote.commit,
      appTag: cfg.appTag,
      nodeTag: cfg.nodeTag,
    }
    // Fetching by name works on every server; by id only where the server allows it.
    return {
      version: keep({ ...v, resolvedAt: now }),
      fetchRef: checkedOut === remote.commit ? remote.commit : cfg.appTag,
    }
  }
  return installableVersion(cfg, step, remote.commit, log)
}

/** A branch resolved anew: its latest installable commit, recorded as of now. */
async function installableVersion(
  cfg: VersionConfig,
  step: Parameters<typeof lsRemote>[0],
  tip: string,
  log: (line: string) => void,
): Promise<Resolved> {
  const { notice, ...tags } = await latestInstallable(cfg, step, tip, log)
  const version: PosthogVersion = {
    ref: cfg.appTag,
    kind: 'branch',
    ...tags,
    repoUrl: remoteFor(cfg.repoUrl).url,
    registryUrl: cfg.registryUrl,
    resolvedAt: new Date().toISOString(),
  }
  return { version, fetchRef: version.commit, notice }
}

interface Installable {
  commit: string
  appTag: string
  nodeTag: string
  notice?: string
}

async function latestInstallable(
  cfg: VersionConfig,
  step: Parameters<typeof lsRemote>[0],
  tip: string,
  log: (line: string) => void,
): Promise<Installable> {
  log(`looking for the newest commit of ${cfg.appTag} whose images ${cfg.registryUrl} has published`)
  const commits = await firstParentHistory(step, tip, MAX_COMMITS)
  const app = await firstWithImage(cfg.registryUrl, commits)
  if (app < 0)
    throw new RuntimeFailure(
      `none of the newest ${commits.length} commits of ${cfg.appTag} has an image in ${cfg.registryUrl}`,
      'set POSTHOG_APP_TAG to a tag or commit whose images exist, or run again later',
    )
  const commit = commits[app]!
  if (cfg.nodeTag !== 'latest') return { commit, appTag: commit, nodeTag: cfg.nodeTag }
  const node = await firstWithImage(`${cfg.registryUrl}-node`, commits.slice(app))
  if (node >= 0) return { commit, appTag: commit, nodeTag: commits[app + node]! }
  return {
    commit,
    appTag: commit,
    nodeTag: 'latest',
    notice: `no ${cfg.registryUrl}-node image matches commit ${commit.slice(0, 12)} or the ${commits.length - app - 1} before it; using ${cfg.registryUrl}-node:latest, which may expect another database schema (set POSTHOG_NODE_TAG to pin one)`,
  }
}

async function firstWithImage(repository: string, commits: string[]): Promise<number> {
  for (let i = 0; i < commits.length; i++) if (await imageExists(`${repository}:${commits[i]}`)) return i
  return -1
}

/** Asks the registry (`docker manifest inspect`, which needs no daemon) whether `image` exists. */
export async function imageExists(image: string): Promise<boolean> {
  const out = await docker(['manifest', 'inspect', image], { nothrow: true, timeout: '60s' })
  if (out.ok) return true
  const why = `${out.stderr}\n${out.stdout}`.trim()
  if (/no such manifest|manifest unknown|manifest for \S+ not found/i.test(why)) return false
  throw new RuntimeFailure(
    `could not ask the registry whether ${image} exists: ${why.split('\n').filter(Boolean).at(-1) ?? `exit ${out.exitCode}`}`,
    'check the network (and docker login, for a private registry) and run again, or set POSTHOG_APP_TAG to a tag or commit',
  )
}

/** The configuration with the image tags the version pins (what STACK_DIR/.env gets). */
export function pinnedConfig<C extends Pick<Config, 'appTag' | 'nodeTag' | 'raw'>>(
  cfg: C,
  v: PosthogVersion,
): C {
  return {
    ...cfg,
    appTag: v.appTag,
    nodeTag: v.nodeTag,
    raw: { ...cfg.raw, POSTHOG_APP_TAG: v.appTag, POSTHOG_NODE_TAG: v.nodeTag },
  }
}
