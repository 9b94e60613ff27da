// Benchmark (issue 2): prepare's fetch (precise, and the stock-git sparse way) against the seed's
// `git clone --filter=blob:none`, both from the same generated repository (>= 20,000 files,
// >= 2,000 commits) served over real smart HTTP on 127.0.0.1. Prints bytes, HTTP round trips and
// wall time of each, the floor (the needed blobs + the trees on their paths + the commit, packed),
// and the ratios. Goal: >= 50x fewer bytes than the seed; stretch: <= 3x the floor in <= 8 round trips.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { $ } from 'zx'
import { fetchSources } from '../lib/prepare.mts'
import {
  git,
  makePosthogRepo,
  type PosthogRepoOptions,
  repoCacheKey,
  serveRepo,
} from '../test/helpers/fixture-repo.ts'

$.quiet = true

const PARAMS: PosthogRepoOptions = {
  unrelatedFiles: Number(process.env.BENCH_FILES ?? 20_000),
  commits: Number(process.env.BENCH_COMMITS ?? 2_000),
  filesPerCommit: 8,
  profile: process.env.BENCH_PROFILE === 'uniform' ? 'uniform' : 'realistic',
}

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

function runAsync(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
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

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`

const repo = cachedRepo()
const files = git(['ls-tree', '-r', '--name-only', 'HEAD'], { cwd: repo }).split('\n').length
const commits = Number(git(['rev-list', '--count', 'HEAD'], { cwd: repo }))
console.log(`repository: ${files} files, ${commits} commits`)
const server = await serveRepo(repo)
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-fetch-'))
try {
  const measurePrepare = async (mode: 'precise' | 'sparse'): Promise<Measure & { paths: string[] }> => {
    process.env.HOMELAB_FETCH_MODE = mode
    server.resetStats()
    const t0 = Date.now()
    const stackDir = path.join(work, `stack-${mode}`)
    const sources = await fetchSources({ repoUrl: server.url, appTag: 'latest', stackDir }, () => {})
    return {
      bytes: server.stats.bytes,
      requests: server.stats.requests,
      ms: Date.now() - t0,
      paths: sources.paths,
    }
  }
  const prepare = await measurePrepare('precise')
  const sparse = await measurePrepare('sparse')
  delete process.env.HOMELAB_FETCH_MODE
  server.resetStats()
  const t = Date.now()
  await runAsync('git', ['clone', '--quiet', '--filter=blob:none', server.url, path.join(work, 'seed')])
  const seed: Measure = { bytes: server.stats.bytes, requests: server.stats.requests, ms: Date.now() - t }

  const floor = floorBytes(repo, prepare.paths)
  const rows = [
    ['', 'bytes', 'round trips', 'wall time'],
    [
      'prepare (precise: protocol v2, per level)',
      kb(prepare.bytes),
      String(prepare.requests),
      `${prepare.ms} ms`,
    ],
    [
      'prepare, sparse way (depth 1, blob:none)',
      kb(sparse.bytes),
      String(sparse.requests),
      `${sparse.ms} ms`,
    ],
    ["seed's clone --filter=blob:none", kb(seed.bytes), String(seed.requests), `${seed.ms} ms`],
    [`floor (${floor.objects} objects, packed)`, kb(floor.bytes), '', ''],
  ]
  for (const r of rows)
    console.log(`${r[0]!.padEnd(44)} ${r[1]!.padStart(12)} ${r[2]!.padStart(12)} ${r[3]!.padStart(10)}`)
  const fewer = seed.bytes / prepare.bytes
  const overFloor = prepare.bytes / floor.bytes
  console.log(
    `seed / prepare bytes: ${fewer.toFixed(1)}x fewer (goal >= 50x: ${fewer >= 50 ? 'met' : 'NOT met'})`,
  )
  console.log(
    `prepare / floor bytes: ${overFloor.toFixed(1)}x in ${prepare.requests} round trips (stretch <= 3x in <= 8: ${
      overFloor <= 3 && prepare.requests <= 8 ? 'met' : 'not met'
    })`,
  )
  console.log(
    `sparse way: ${(seed.bytes / sparse.bytes).toFixed(1)}x fewer bytes than the seed, ${(sparse.bytes / floor.bytes).toFixed(1)}x the floor in ${sparse.requests} round trips (used for non-http remotes or behind a proxy)`,
  )
  console.log(`seed / prepare wall time: ${(seed.ms / prepare.ms).toFixed(1)}x`)
  process.exitCode = fewer >= 50 ? 0 : 1
} finally {
  await server.close()
  fs.rmSync(work, { recursive: true, force: true })
}
