// Benchmark (issue 8): bytes and HTTP requests of prepare's fetch, as prepare does it (version
// look-up, then the shallow, blob-less, sparse checkout), against a plain
// `git clone --filter=blob:none`, both from the same generated repository (>= 20,000 files,
// >= 2,000 commits) served over real smart HTTP on 127.0.0.1 with GitHub's filter policy.
// Two runs: a tag, and `latest` whose newest 10 commits have no images yet (the registry is the
// fake docker), which adds the walk back through the branch's history. Also prints the floor
// (the needed blobs, the trees on their paths and the commit, packed).
// Goal: >= 50x fewer bytes than that clone, <= 10 requests.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { resolveVersion } from '../lib/stack/posthog-version.mts'
import { fetchSources } from '../lib/stack/prepare.mts'
import {
  git,
  makePosthogRepo,
  type PosthogRepoOptions,
  repoCacheKey,
  serveRepo,
} from '../test/helpers/fixture-repo.ts'

const PARAMS: PosthogRepoOptions = {
  unrelatedFiles: Number(process.env.BENCH_FILES ?? 20_000),
  commits: Number(process.env.BENCH_COMMITS ?? 2_000),
  filesPerCommit: 8,
  profile: process.env.BENCH_PROFILE === 'uniform' ? 'uniform' : 'realistic',
}
const GOAL_RATIO = 50
const GOAL_REQUESTS = 10

function cachedRepo(): string {
  const dir = path.join(os.tmpdir(), 'posthog-homelab-bench', repoCacheKey(PARAMS))
  const repo = path.join(dir, 'posthog.git')
  const done = path.join(dir, 'complete')
  if (fs.existsSync(done)) return repo
  fs.rmSync(dir, { recursive: true, force: true })
  const t = Date.now()
  makePosthogRepo(repo, PARAMS)
  git(['repack', '-adq'], { cwd: repo })
  fs.writeFileSync(done, '')
  console.log(`generated the repository in ${((Date.now() - t) / 1000).toFixed(1)} s (cached in ${dir})`)
  return repo
}

function runAsync(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
      stdio: 'ignore',
      timeout: 600_000,
    })
    child.on('error', reject)
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}`)),
    )
  })
}

/** Size of a pack holding exactly the objects a checkout of `paths` needs at HEAD. */
function floorBytes(repo: string, paths: string[]): { bytes: number; objects: number } {
  const ids = new Set<string>([
    git(['rev-parse', 'HEAD'], { cwd: repo }),
    git(['rev-parse', 'HEAD^{tree}'], { cwd: repo }),
  ])
  for (const p of paths) {
    const parts = p.split('/')
    for (let i = 1; i < parts.length; i++)
      ids.add(git(['rev-parse', `HEAD:${parts.slice(0, i).join('/')}`], { cwd: repo }))
    const type = git(['cat-file', '-t', `HEAD:${p}`], { cwd: repo })
    ids.add(git(['rev-parse', `HEAD:${p}`], { cwd: repo }))
    if (type === 'tree')
      for (const line of git(['ls-tree', '-r', '-t', `HEAD:${p}`], { cwd: repo })
        .split('\n')
        .filter(Boolean))
        ids.add(line.split(/\s+/)[2]!)
  }
  const packDir = fs.mkdtempSync(path.join(os.tmpdir(), 'floor-'))
  git(['pack-objects', '-q', path.join(packDir, 'p')], { cwd: repo, input: `${[...ids].join('\n')}\n` })
  const pack = fs.readdirSync(packDir).find((f) => f.endsWith('.pack'))!
  const bytes = fs.statSync(path.join(packDir, pack)).size
  fs.rmSync(packDir, { recursive: true, force: true })
  return { bytes, objects: ids.size }
}

interface Measure {
  bytes: number
  requests: number
  ms: number
}

const kb = (n: number) =>
  n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`

const repo = cachedRepo()
const files = git(['ls-tree', '-r', '--name-only', 'HEAD'], { cwd: repo }).split('\n').length
const commits = Number(git(['rev-list', '--count', 'HEAD'], { cwd: repo }))
console.log(`repository: ${files} files, ${commits} commits; served with GitHub's filter policy`)
const server = await serveRepo(repo, { policy: 'github' })
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-fetch-'))
try {
  // The registry: every commit but the newest 10 has its images.
  const history = git(['rev-list', '--first-parent', '--max-count=100', 'HEAD'], { cwd: repo }).split('\n')
  const scenario = path.join(work, 'registry.json')
  const manifests = history.slice(10).flatMap((c) => [`posthog/posthog:${c}`, `posthog/posthog-node:${c}`])
  fs.writeFileSync(scenario, JSON.stringify({ manifests }))
  process.env.DOCKER_BIN = path.resolve('test/fakes/docker')
  process.env.FAKE_DOCKER_SCENARIO = scenario

  let paths: string[] = []
  const measurePrepare = async (ref: string): Promise<Measure> => {
    const cfg = {
      repoUrl: server.url,
      appTag: ref,
      nodeTag: 'latest',
      registryUrl: 'posthog/posthog',
      stackDir: path.join(work, `stack-${ref}`),
    }
    server.resetStats()
    const t0 = Date.now()
    const resolved = await resolveVersion(cfg)
    const sources = await fetchSources({ ...cfg, appTag: resolved.fetchRef }, () => {})
    paths = sources.paths
    return { bytes: server.stats.bytes, requests: server.stats.requests, ms: Date.now() - t0 }
  }
  const tag = await measurePrepare('v2') // the fixture's tag on the newest commit
  const latest = await measurePrepare('latest')
  server.resetStats()
  const t = Date.now()
  await runAsync('git', ['clone', '--quiet', '--filter=blob:none', server.url, path.join(work, 'clone')])
  const clone: Measure = { bytes: server.stats.bytes, requests: server.stats.requests, ms: Date.now() - t }
  const floor = floorBytes(repo, paths)

  const rows = [
    ['', 'bytes', 'requests', 'wall time'],
    ['prepare, a tag', kb(tag.bytes), String(tag.requests), `${tag.ms} ms`],
    [
      'prepare, latest (10 commits without images)',
      kb(latest.bytes),
      String(latest.requests),
      `${latest.ms} ms`,
    ],
    ['git clone --filter=blob:none', kb(clone.bytes), String(clone.requests), `${clone.ms} ms`],
    [`floor (${floor.objects} objects, packed)`, kb(floor.bytes), '', ''],
  ]
  for (const r of rows)
    console.log(`${r[0]!.padEnd(46)} ${r[1]!.padStart(11)} ${r[2]!.padStart(9)} ${r[3]!.padStart(10)}`)
  let met = true
  for (const [name, m] of [
    ['a tag', tag],
    ['latest', latest],
  ] as const) {
    const ratio = clone.bytes / m.bytes
    const ok = ratio >= GOAL_RATIO && m.requests <= GOAL_REQUESTS
    met &&= ok
    console.log(
      `prepare, ${name}: ${ratio.toFixed(1)}x fewer bytes than a blob-less clone in ${m.requests} requests ` +
        `(goal >= ${GOAL_RATIO}x in <= ${GOAL_REQUESTS}: ${ok ? 'met' : 'NOT met'}); ${(m.bytes / floor.bytes).toFixed(1)}x the floor`,
    )
  }
  process.exitCode = met ? 0 : 1
} finally {
  await server.close()
  fs.rmSync(work, { recursive: true, force: true })
}
