// The folder beside the project that holds real upstream files and real binaries (the Compose
// loader, frp). Developers and CI have it; a user's plain `git clone` does not, so every test that
// needs it asks through here and is skipped with one line naming what is missing.
//
//   const frps = sharedFile('tools/linux-amd64/frps')        // absolute path, or undefined
//   describe.skipIf(!needShared('tools/linux-amd64/frps', 'the real frp tests'))('...', ...)
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * `../shared` from the project root, resolved from this file rather than the working directory.
 * HOMELAB_TEST_SHARED points elsewhere (a missing folder shows what a plain clone runs).
 */
export const SHARED =
  process.env.HOMELAB_TEST_SHARED ?? fileURLToPath(new URL('../../../shared', import.meta.url))

/** The absolute path of `rel` under ../shared when it exists there. */
export function sharedFile(rel: string): string | undefined {
  const file = path.join(SHARED, rel)
  return fs.existsSync(file) ? file : undefined
}

const reported = new Set<string>()

/**
 * Whether `rel` exists under ../shared; when it does not, says once (per test file) which tests
 * are skipped and why, so a plain clone's test run explains its skips.
 */
export function needShared(rel: string, what: string): boolean {
  if (sharedFile(rel)) return true
  const line = `skipped ${what}: ../shared/${rel} is missing (a plain clone has no ../shared)`
  if (!reported.has(line)) {
    reported.add(line)
    console.warn(line)
  }
  return false
}

/** A static linux/amd64 tool from ../shared/tools, when it is there and this machine can run it. */
export function sharedTool(name: string): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined
  return sharedFile(`tools/linux-amd64/${name}`)
}

/** The real Compose loader (`docker compose config` without a daemon), when ../shared has it. */
export const COMPOSE_CONFIG = sharedTool('compose-config')
/** The real frp 0.70.1 binaries, when ../shared has them. */
export const REAL_FRPS = sharedTool('frps')
export const REAL_FRPC = sharedTool('frpc')
/** PostHog's own hobby compose files (verbatim copies), when ../shared has them. */
export const UPSTREAM_POSTHOG = sharedFile('fixtures/posthog')
