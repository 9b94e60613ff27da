// frp releases for tests: a real tar.gz laid out like frp's (frp_<ver>_<os>_<arch>/{frpc,frps,LICENSE})
// plus frp_sha256_checksums.txt, served over HTTP on 127.0.0.1 (FRP_RELEASE_BASE_URL = `baseUrl`).
// The archive holds the real frp binaries from ../shared for their own version (0.70.1), so the
// setup scripts install and verify with the real thing; any other version, or a machine without
// ../shared, gets stand-ins that answer `--version` and `verify` (test/fakes/frp.mjs).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import zlib from 'node:zlib'
import { assetName, releaseDirName } from '../../lib/tunnel/release.mts'
import { listenLocal, scratchDir } from './common.ts'
import { FAKE_FRP, REAL_FRP_VERSION, REAL_FRPC, REAL_FRPS } from './frp.ts'

export interface FakeRelease {
  baseUrl: string
  /** Request paths served so far. */
  requests: string[]
  close: () => Promise<void>
}

/** A stand-in binary for the archive: a bash script that runs frp.mjs as `role`, reporting `version`. */
export function standInBinary(role: 'frpc' | 'frps', version: string): string {
  return [
    '#!/usr/bin/env bash',
    `# frp ${role} stand-in (test/fakes/frp.mjs), version ${version}`,
    `FAKE_FRP_VERSION=${version} exec node ${FAKE_FRP} ${role} "$@"`,
    '',
  ].join('\n')
}

/** Whether buildRelease puts the real frp into the archive for `version`. */
export function releaseIsReal(version: string): boolean {
  return version === REAL_FRP_VERSION && Boolean(REAL_FRPS && REAL_FRPC)
}

function putBinary(dir: string, role: 'frpc' | 'frps', version: string): void {
  const file = path.join(dir, role)
  const real = role === 'frps' ? REAL_FRPS : REAL_FRPC
  if (releaseIsReal(version) && real) fs.copyFileSync(real, file)
  else fs.writeFileSync(file, standInBinary(role, version))
  fs.chmodSync(file, 0o755)
}

/** Writes <root>/v<ver>/<asset> and the checksum file; `corrupt` lists a wrong checksum. */
export function buildRelease(root: string, version: string, opts: { corrupt?: boolean } = {}): string {
  const dir = path.join(root, `v${version}`)
  const work = scratchDir('frp-fake-release-')
  const top = releaseDirName(version)
  fs.mkdirSync(path.join(work, top), { recursive: true })
  for (const role of ['frpc', 'frps'] as const) putBinary(path.join(work, top), role, version)
  fs.writeFileSync(path.join(work, top, 'LICENSE'), 'Apache-2.0 (test release)\n')
  fs.mkdirSync(dir, { recursive: true })
  const asset = assetName(version)
  // gzip's fastest level: the real binaries are 37 MB, and the test only needs a valid archive
  const tar = execFileSync('tar', ['-cf', '-', '-C', work, top], { timeout: 30_000, maxBuffer: 256 << 20 })
  fs.writeFileSync(path.join(dir, asset), zlib.gzipSync(tar, { level: 1 }))
  fs.rmSync(work, { recursive: true, force: true })
  const sum = createHash('sha256')
    .update(fs.readFileSync(path.join(dir, asset)))
    .digest('hex')
  const listed = opts.corrupt ? sum.replace(/^./, (c) => (c === '0' ? '1' : '0')) : sum
  fs.writeFileSync(
    path.join(dir, 'frp_sha256_checksums.txt'),
    `${'a'.repeat(64)}  frp_${version}_windows_amd64.zip\n${listed}  ${asset}\n`,
  )
  return dir
}

export async function serveDir(root: string): Promise<FakeRelease> {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')
    requests.push(url)
    const file = path.join(root, path.normalize(url))
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end('Not Found')
      return
    }
    const body = fs.readFileSync(file)
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  const { port, close } = await listenLocal(server)
  return { baseUrl: `http://127.0.0.1:${port}`, requests, close }
}
