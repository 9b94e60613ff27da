// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
// Building STACK_DIR/docker-compose.override.yml (pure): switched-off services, memory limits,
// the proxy on 127.0.0.1 only with plain-HTTP Caddy, and the fixes for the seed's pitfalls.
// Built with the yaml Document API, never by string concatenation; `!override` replaces what
// Compose would otherwise merge (needs Compose 2.24+).
import { Document, isScalar, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml'
import { UsageError } from './cli.mts'
import {
  type ComposeFile,
  type DependsOn,
  effectiveDependsOn,
  extendedBaseService,
  imageOf,
  isNodeService,
  serviceNames,
} from './compose.mts'

/** Services the stack cannot work without: Caddy routes /e/, /flags/ and everything else to them. */
export const ESSENTIAL_SERVICES = ['capture', 'feature-flags', 'web']

const BLOCKING_CONDITIONS = new Set(['service_healthy', 'service_completed_successfully'])

export interface OverrideInput {
  hobby: ComposeFile
  base?: ComposeFile
  disabled: string[]
  memoryLimits: Record<string, string>
  proxyPort: number
  worker: { concurrency: string; maxTasksPerChild: string; maxMemoryPerChild: string }
  /** Region given to the AWS SES client of node services (pitfall 2). */
  sesRegion?: string
}

export interface OverrideResult {
  yaml: string
  notices: string[]
  services: string[]
  enabledServices: string[]
  disabledServices: string[]
}

/** The services to switch off, after the refusal rules; notices for names the file does not define. */
export function planDisabled(
  services: string[],
  dependsOn: Record<string, DependsOn>,
  requested: string[],
): { disabled: string[]; notices: string[] } {
  const notices: string[] = []
  const disabled: string[] = []
  for (const name of requested) {
    if (ESSENTIAL_SERVICES.includes(name))
      throw new UsageError(
        `DISABLED_SERVICES names ${name}, which PostHog cannot run without (Caddy routes ${
          name === 'web' ? 'every page' : name === 'capture' ? '/e/ and /batch' : '/flags'
        } to it): remove it from DISABLED_SERVICES`,
      )
    if (!services.includes(name)) {
      notices.push(`${name} is not defined by this compose file; skipped`)
      continue
    }
    if (!disabled.includes(name)) disabled.push(name)
  }
  for (const svc of services) {
    if (disabled.includes(svc)) continue
    for (const [dep, condition] of Object.entries(dependsOn[svc] ?? {})) {
      if (disabled.includes(dep) && BLOCKING_CONDITIONS.has(condition))
        throw new UsageError(
          `DISABLED_SERVICES names ${dep}, but ${svc} waits for it (${condition}): remove ${dep} from DISABLED_SERVICES or disable ${svc} too`,
        )
    }
  }
  return { disabled, notices }
}

// ---------------------------------------------------------------------------------------------
// Caddy: plain HTTP for any host behind the TLS-terminating nginx (reference posthog-hobby.md §3).

const GLOBAL_BLOCK = [
  '{',
  '    auto_https off',
  '    servers {',
  '        trusted_proxies static private_ranges',
  '    }',
  '}',
]

const SITE_ADDRESS = /^([ \t]*)\$\{(?:CADDY_HOST|DOMAIN)(?::?-[^}]*)?\}([ \t]*\{[ \t]*)$/m
const TLS_GLOBAL_BLOCK = /^\{[ \t]*\n[ \t]*\$\{CADDY_TLS_BLOCK(?::?-[^}]*)?\}[ \t]*\n[ \t]*\}[ \t]*(\n|$)/

/**
 * The base file's own CADDYFILE (so each PostHog version keeps its routes) with: our global
 * block (no ACME, forwarded headers trusted from private ranges) instead of `${CADDY_TLS_BLOCK}`,
 * and `http://` as the site address instead of `${CADDY_HOST:-...}` (upstream) or
 * `${DOMAIN:-...}` (newer bases). Other dollars are escaped as `$$`, since Compose interpolates
 * the override file too.
 */
export function buildCaddyfile(baseCaddyfile: string): string {
  if (!SITE_ADDRESS.test(baseCaddyfile))
    throw new UsageError(
      'the base compose file has a CADDYFILE whose site address is neither ${CADDY_HOST...} nor ${DOMAIN...}; this PostHog version is not supported yet: pin POSTHOG_APP_TAG to an older version',
    )
  const SITE = '\u0000SITE\u0000'
  const GLOBAL = '\u0000GLOBAL\u0000'
  let text = baseCaddyfile.replace(
    SITE_ADDRESS,
    (_m, indent: string, brace: string) => `${indent}${SITE}${brace}`,
  )
  if (TLS_GLOBAL_BLOCK.test(text)) text = text.replace(TLS_GLOBAL_BLOCK, `${GLOBAL}\n`)
  else if (text.trimStart().startsWith('{'))
    throw new UsageError(
      'the base compose file has a CADDYFILE global block this toolkit does not recognise: pin POSTHOG_APP_TAG to an older version',
    )
  else text = `${GLOBAL}\n${text}`
  text = text.replaceAll('$', '$$$$')
  return text.replace(GLOBAL, GLOBAL_BLOCK.join('\n')).replace(SITE, 'http://')
}

function baseCaddyfileOf(input: OverrideInput): string | undefined {
  const proxy = input.base ? extendedBaseService(input.hobby, input.base, 'proxy') : undefined
  const own = (input.hobby.services.proxy?.environment as Record<string, unknown> | undefined)?.CADDYFILE
  const env = (proxy?.environment ?? {}) as Record<string, unknown>
  const value = typeof own === 'string' ? own : env.CADDYFILE
  return typeof value === 'string' ? value : undefined
}

// ---------------------------------------------------------------------------------------------

function tagged<T extends YAMLMap | YAMLSeq>(doc: Document, value: unknown, tag: string): T {
  const node = doc.createNode(value) as T
  node.tag = tag
  return node
}

function commentOn(doc: Document, pathKeys: string[], comment: string): void {
  const parent = doc.getIn(pathKeys.slice(0, -1), true) as YAMLMap | undefined
  const name = pathKeys.at(-1)
  const pair = parent?.items.find((p) => p.key === name || (p.key as Scalar | null)?.value === name)
  if (!pair) return
  // setIn creates plain-string keys; a comment needs a node.
  if (!isScalar(pair.key)) pair.key = doc.createNode(pair.key)
  const key = pair.key as Scalar
  key.commentBefore = key.commentBefore ? `${key.commentBefore}\n${comment}` : comment
}

export function buildOverride(input: OverrideInput): OverrideResult {
  const services = serviceNames(input.hobby)
  const dependsOn = effectiveDependsOn(input.hobby, input.base)
  const { disabled, notices } = planDisabled(services, dependsOn, input.disabled)
  const enabled = services.filter((s) => !disabled.includes(s))
  const doc = new Document({ services: {} })
  doc.commentBefore = [
    ' Generated by posthog-homelab (scripts/prepare.mts) from the compose files next to it.',
    ' Every run rewrites it: put your own changes in docker-compose.local.yml, which is never touched.',
    ' Pitfall 4 (migrations before plugins) is handled by the start order of scripts/up.mts.',
  ].join('\n')

  for (const svc of disabled) {
    doc.setIn(['services', svc, 'deploy', 'replicas'], 0)
    commentOn(doc, ['services', svc], ' DISABLED_SERVICES: switched off to save memory')
  }
  for (const svc of enabled) {
    const deps = dependsOn[svc] ?? {}
    const dropped = Object.keys(deps).filter((d) => disabled.includes(d))
    if (dropped.length === 0) continue
    const kept = Object.fromEntries(
      Object.entries(deps)
        .filter(([d]) => !dropped.includes(d))
        .map(([d, condition]) => [d, { condition }]),
    )
    doc.setIn(['services', svc, 'depends_on'], tagged(doc, kept, '!override'))
    commentOn(doc, ['services', svc, 'depends_on'], ` without ${dropped.join(', ')} (switched off)`)
  }

  for (const [svc, limit] of Object.entries(input.memoryLimits)) {
    if (!services.includes(svc)) {
      notices.push(`MEMORY_LIMITS names ${svc}, which this compose file does not define; skipped`)
      continue
    }
    doc.setIn(['services', svc, 'deploy', 'resources', 'limits', 'memory'], limit)
    commentOn(
      doc,
      ['services', svc, 'deploy', 'resources'],
      ' pitfall 3: hard memory cap (MEMORY_LIMITS); without one it grows until the OOM killer (exit 137)',
    )
  }

  if (services.includes('proxy')) {
    doc.setIn(['services', 'proxy', 'ports'], tagged(doc, [`127.0.0.1:${input.proxyPort}:80`], '!override'))
    commentOn(
      doc,
      ['services', 'proxy', 'ports'],
      ' only on 127.0.0.1:POSTHOG_PROXY_HTTP_PORT (frpc forwards it); replaces the public 80:80 and 443:443',
    )
    const caddyfile = baseCaddyfileOf(input)
    if (caddyfile) {
      doc.setIn(['services', 'proxy', 'environment', 'CADDYFILE'], buildCaddyfile(caddyfile))
      commentOn(
        doc,
        ['services', 'proxy', 'environment'],
        ' plain HTTP for any host behind the TLS-terminating nginx: no ACME, X-Forwarded-* trusted from private ranges',
      )
    } else notices.push('the proxy service has no CADDYFILE to rewrite; Caddy keeps its own configuration')
  }

  const nodeServices = enabled.filter((s) => isNodeService(imageOf(input.hobby, input.base, s)))
  for (const svc of nodeServices) {
    doc.setIn(['services', svc, 'environment', 'SESSION_RECORDING_API_REDIS_HOST'], 'redis7')
    doc.setIn(['services', svc, 'environment', 'SESSION_RECORDING_API_REDIS_PORT'], '6379')
    doc.setIn(['services', svc, 'environment', 'SES_REGION'], input.sesRegion ?? 'us-east-1')
    commentOn(
      doc,
      ['services', svc, 'environment', 'SESSION_RECORDING_API_REDIS_HOST'],
      ' pitfall 1: the node config defaults this Redis to 127.0.0.1 (ECONNREFUSED 127.0.0.1:6379)',
    )
    commentOn(
      doc,
      ['services', svc, 'environment', 'SES_REGION'],
      " pitfall 2: older node images crash with 'Region is missing' when no SES region is set",
    )
  }

  if (enabled.includes('worker')) {
    doc.setIn(['services', 'worker', 'environment', 'WEB_CONCURRENCY'], input.worker.concurrency)
    doc.setIn(
      ['services', 'worker', 'environment', 'CELERY_MAX_TASKS_PER_CHILD'],
      input.worker.maxTasksPerChild,
    )
    doc.setIn(
      ['services', 'worker', 'environment', 'CELERY_MAX_MEMORY_PER_CHILD'],
      input.worker.maxMemoryPerChild,
    )
    commentOn(
      doc,
      ['services', 'worker', 'environment', 'WEB_CONCURRENCY'],
      ' pitfall 5: Celery worker tuning from .env (POSTHOG_WORKER_WEB_CONCURRENCY, POSTHOG_CELERY_*),\n so the worker stops growing until Docker kills it',
    )
  }

  return {
    yaml: doc.toString({ lineWidth: 0 }),
    notices,
    services,
    enabledServices: enabled,
    disabledServices: disabled,
  }
}
