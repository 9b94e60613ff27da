// The stack as the real Compose loader sees it: STACK_DIR loaded by ../shared's compose-config with
// exactly the files and flags the scripts pass to `docker compose` (lib/core/docker.mts composePrefix,
// which adds docker-compose.local.yml when it exists), and the assertions every test that prepares
// a stack makes on the merged model. Without ../shared the loader is missing: `loadStack` returns
// undefined and the caller's test says so (see needShared).
import { spawnSync } from 'node:child_process'
import { expect } from 'vitest'
import { composePrefix } from '../../lib/core/docker.mts'
import { COMPOSE_CONFIG } from './shared.ts'

export interface ServiceModel {
  profiles?: string[]
  depends_on?: Record<string, { condition: string }>
  ports?: { host_ip?: string; published?: string; target: number; protocol?: string }[]
  deploy?: { replicas?: number; resources?: { limits?: { memory?: string | number } } }
  environment?: Record<string, string | null>
  logging?: { driver?: string; options?: Record<string, string> }
  volumes?: { type: string; source?: string; target: string }[]
  image?: string
}

export interface StackModel {
  services: Record<string, ServiceModel>
  /** The loader's warnings (`level=warning msg=...`), e.g. an unset variable. */
  warnings: string[]
}

/** Loads STACK_DIR as `docker compose` would; throws with the loader's reason when it does not load. */
export function loadStack(stackDir: string, extra: string[] = []): StackModel | undefined {
  if (!COMPOSE_CONFIG) return undefined
  const args = [...composePrefix(stackDir).slice(1), '--format', 'json', ...extra]
  const r = spawnSync(COMPOSE_CONFIG, args, { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`compose-config rejected ${stackDir}: ${r.stderr.trim()}`)
  const warnings = r.stderr
    .split('\n')
    .filter((l) => /level=warn/.test(l))
    .map((l) => l.replace(/^.*msg=/, ''))
  return { services: (JSON.parse(r.stdout) as { services: StackModel['services'] }).services, warnings }
}

export interface StackExpectations {
  proxyPort: number
  /** Services that must be in the model (enabled). */
  enabled?: string[]
  /** Services that must not be (switched off: never pulled nor created). */
  disabled?: string[]
  /** service -> bytes */
  memoryLimits?: Record<string, number>
}

/**
 * What every prepared stack must be, checked on the merged model: it loads without a warning; the
 * proxy is published only on 127.0.0.1:PORT; switched-off services are gone and nothing depends
 * on them; the memory limits are as configured; every service's log is rotated.
 */
export function expectSafeStack(model: StackModel, e: StackExpectations): void {
  expect(model.warnings, 'the loader warned').toEqual([])
  const proxyPorts = model.services.proxy?.ports ?? []
  expect(proxyPorts.map((p) => `${p.host_ip}:${p.published}:${p.target}`)).toEqual([
    `127.0.0.1:${e.proxyPort}:80`,
  ])
  for (const [name, svc] of Object.entries(model.services))
    for (const p of svc.ports ?? [])
      expect(p.host_ip, `${name} publishes ${p.published} on every interface`).toBe('127.0.0.1')
  for (const s of e.enabled ?? []) expect(Object.keys(model.services), `${s} is enabled`).toContain(s)
  for (const s of e.disabled ?? []) expect(Object.keys(model.services), `${s} is off`).not.toContain(s)
  for (const [name, svc] of Object.entries(model.services)) {
    for (const dep of Object.keys(svc.depends_on ?? {}))
      expect(Object.keys(model.services), `${name} depends on ${dep}`).toContain(dep)
    expect(svc.logging?.options?.['max-size'], `${name}'s log is rotated`).toBeDefined()
  }
  for (const [name, bytes] of Object.entries(e.memoryLimits ?? {}))
    expect(Number(model.services[name]?.deploy?.resources?.limits?.memory), `${name}'s memory limit`).toBe(
      bytes,
    )
}
