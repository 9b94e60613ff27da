// The precise way to fetch the PostHog checkout (http(s) remotes): ask the server, through git
// protocol v2, for exactly the objects on the needed paths, one request per tree level, and
// write the files ourselves. A sparse `git checkout` needs every tree of the commit to build its
// index (a sparse index needs cone mode, which always includes every file at the root); here
// only the trees on the needed paths travel. The checkout has no index: HEAD, .git/shallow and
// .git/homelab-files.json (path -> blob) describe it.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { $ } from 'zx'
import { RuntimeFailure, UsageError } from './cli.mts'
import { writeFileAtomic } from './fsutil.mts'
import { type FetchOptions, git, gitEnv, LOCAL_TIMEOUT, networkStep } from './gitcli.mts'
import { fetchPack, lsRefs, WireError } from './gitwire.mts'

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

export async function preciseFetch(opts: FetchOptions): Promise<string> {
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

export function readManifest(dir: string): Manifest {
  try {
    return JSON.parse(fs.readFileSync(manifestFile(dir), 'utf8')) as Manifest
  } catch {
    return { paths: {}, files: {} }
  }
}

function blobId(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
}

type TreeReader = (oid: string) => Promise<Map<string, TreeEntry>>

/** Lists trees already in the object store (ls-tree of a present tree never fetches anything). */
function treeReader(dir: string): TreeReader {
  const cache = new Map<string, Map<string, TreeEntry>>()
  return async (oid) => {
    const cached = cache.get(oid)
    if (cached) return cached
    const entries = new Map<string, TreeEntry>()
    for (const rec of (await git(dir, ['ls-tree', '-z', oid])).stdout.split('\0').filter(Boolean)) {
      const [meta, name] = rec.split('\t') as [string, string]
      const [mode, type, id] = meta.split(' ') as [string, string, string]
      entries.set(name, { mode, type, oid: id })
    }
    cache.set(oid, entries)
    return entries
  }
}

interface Needs {
  /** Files whose blobs are at hand: path -> entry. */
  files: Map<string, TreeEntry>
  /** Objects the trees at hand show to be needed and absent. */
  missing: Set<string>
}

/** What `paths` need under `root`, as far as the trees at hand tell. */
async function collectNeeds(
  root: string,
  paths: string[],
  present: Set<string>,
  ls: TreeReader,
): Promise<Needs> {
  const needs: Needs = { files: new Map(), missing: new Set() }
  const take = async (e: TreeEntry, at: string): Promise<void> => {
    if (e.type === 'commit') return // a submodule: not part of this repository
    if (!present.has(e.oid)) needs.missing.add(e.oid)
    else if (e.type === 'blob') needs.files.set(at, e)
    else if (e.type === 'tree')
      for (const [name, child] of await ls(e.oid)) await take(child, `${at}/${name}`)
  }
  for (const p of paths) {
    const parts = p.split('/').filter(Boolean)
    let tree = root
    for (let i = 0; i < parts.length; i++) {
      if (!present.has(tree)) {
        needs.missing.add(tree)
        break
      }
      const e = (await ls(tree)).get(parts[i]!)
      if (!e) break // not in this version; the caller reports it
      if (i === parts.length - 1) await take(e, p)
      else if (e.type === 'tree') tree = e.oid
      else break
    }
  }
  return needs
}

/**
 * Fetches what `opts.paths` need at `commit`, one request per round (each asks for every object
 * the trees at hand show to be missing, so a round per directory level), then writes the files.
 */
export async function materialize(opts: FetchOptions, commit: string): Promise<void> {
  const ls = treeReader(opts.dir)
  const root = (await git(opts.dir, ['rev-parse', `${commit}^{tree}`])).stdout.trim()
  for (;;) {
    const needs = await collectNeeds(root, opts.paths, await presentObjects(opts.dir), ls)
    if (needs.missing.size === 0) return writeFiles(opts.dir, opts.paths, needs.files)
    const wants = [...needs.missing].sort()
    const got = await fetchPack(opts.repoUrl, wants, { filter: 'tree:0', timeoutMs: WIRE_TIMEOUT_MS })
    await storePack(opts.dir, got.pack)
    const after = await presentObjects(opts.dir)
    if (wants.some((oid) => !after.has(oid)))
      throw new WireError('the server did not send the objects asked for (filter or want refused)', false)
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
      await $({
        cwd: dir,
        env: gitEnv(),
        quiet: true,
        timeout: LOCAL_TIMEOUT as '60s',
      })`git cat-file blob ${e.oid}`
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
