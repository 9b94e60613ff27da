// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Compose's ${VAR} syntax is data here, not a template
// Building STACK_DIR/docker-compose.override.yml (pure): switched-off features and services (a
// profile that is never activated, so they are neither pulled nor created), memory limits, the
// proxy on 127.0.0.1 only with plain-HTTP Caddy (routes to switched-off services answer at once
// instead of 502), the fixes for the runtime pitfalls, and bounded disk use (rotated container
// logs, ZooKeeper purging, ClickHouse's own logs). Built with the yaml Document API, never by
// string concatenation; `!override` replaces what Compose would otherwise merge (Compose 2.24.4+).
import { Document, isScalar, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml'
import { UsageError } from '../core/cli.mts'
import {
  type ComposeFile,
  effectiveDependsOn,
  effectiveValue,
  environmentKeys,
  imageOf,
  isNodeService,
  serviceChain,
  serviceNames,
} from './compose.mts'
import { type DisablePlan, planDisabled } from './features.mts'

/** The profile switched-off services get: never activated, so Compose neither pulls nor creates them. */
export const OFF_PROFILE = 'off'

/** ClickHouse's own logs and system-log TTLs, mounted into its config.d (see CLICKHOUSE_LOGS_CONFIG). */
export const CLICKHOUSE_CONFIG_FILE = 'clickhouse/posthog-homelab.xml'
const CLICKHOUSE_CONFIG_MOUNT = '/etc/clickhouse-server/config.d/posthog-homelab.xml'

export const DEFAULT_LOGGING = { driver: 'json-file', options: { 'max-size': '50m', 'max-file': '3' } }
const ZOOKEEPER_PURGE = { ZOO_AUTOPURGE_PURGEINTERVAL: '1', ZOO_AUTOPURGE_SNAPRETAINCOUNT: '3' }
/** Node services' Redis clients default to TLS, which the stack's Redis does not speak. */
const NODE_REDIS_TLS_OFF = ['CDP_REDIS_TLS', 'LOGS_REDIS_TLS', 'TRACES_REDIS_TLS']

export interface OverrideInput {
  hobby: ComposeFile
  base?: ComposeFile
  /** DISABLED_FEATURES and DISABLED_SERVICES from .env. */
  disabled: { features: string[]; services: string[] }
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
  plan: DisablePlan
}

// ---------------------------------------------------------------------------------------------
// Caddy: plain HTTP for any host behind the TLS-terminating nginx.

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
/** `reverse_proxy host:port`, with an optional `{ ... }` block of options. */
const REVERSE_PROXY = /^([ \t]*)reverse_proxy[ \t]+([a-z0-9][a-z0-9_.-]*):(\d+)([ \t]*\{[^{}]*\})?[ \t]*$/gm

/** Why a route's upstream does not run: its service is switched off, or this version has none. */
export type MissingUpstream = (service: string) => string | undefined

/**
 * The base file's own CADDYFILE (so each PostHog version keeps its routes) with: our global
 * block (no ACME, forwarded headers trusted from private ranges) instead of `${CADDY_TLS_BLOCK}`,
 * `http://` as the site address instead of `${CADDY_HOST:-...}` (upstream) or `${DOMAIN:-...}`
 * (newer bases), and a fast 404 naming the switch for each route whose service does not run (a
 * 502 would look like an outage, and SDKs retry 5xx). Other dollars are escaped as `$$`, since
 * Compose interpolates the override file too.
 */
export function buildCaddyfile(baseCaddyfile: string, missing: MissingUpstream = () => undefined): string {
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
  text = text.replace(REVERSE_PROXY, (line, indent: string, host: string) => {
    const why = missing(host)
    return why ? `${indent}respond "${why.replace(/["\\]/g, '')}" 404` : line
  })
  text = text.replaceAll('$', '$$$$')
  return text.replace(GLOBAL, GLOBAL_BLOCK.join('\n')).replace(SITE, 'http://')
}

function baseCaddyfileOf(input: OverrideInput): string | undefined {
  const value = effectiveValue(input.hobby, input.base, 'proxy', ['environment', 'CADDYFILE'])
  return typeof value === 'string' ? value : undefined
}

/** The 404 text for a route whose upstream service does not run. */
export function missingUpstream(services: string[], plan: DisablePlan): MissingUpstream {
  return (host) => {
    const reason = plan.reasons[host]
    if (reason) return `${host} is switched off on this PostHog (${reason}; see DISABLED_FEATURES in .env)`
    if (!services.includes(host)) return `${host} is not part of this PostHog version`
    return undefined
  }
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
  const plan = planDisabled(services, dependsOn, input.disabled)
  const notices = [...plan.notices]
  const disabled = plan.disabled
  const enabled = services.filter((s) => !disabled.includes(s))
  const doc = new Document({ services: {} })
  doc.commentBefore = [
    ' Generated by posthog-homelab (scripts/prepare.mts) from the compose files next to it.',
    ' Every run rewrites it: put your own changes in docker-compose.local.yml, which is never touched.',
    ' Pitfall 4 (migrations before plugins) is handled by the start order of scripts/up.mts.',
  ].join('\n')

  for (const svc of disabled) {
    doc.setIn(['services', svc, 'profiles'], tagged(doc, [OFF_PROFILE], '!override'))
    commentOn(
      doc,
      ['services', svc],
      ` switched off (${plan.reasons[svc]}): in a profile that is never activated, so neither pulled nor created`,
    )
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
    if (disabled.includes(svc)) continue
    doc.setIn(['services', svc, 'deploy', 'resources', 'limits', 'memory'], limit)
    commentOn(
      doc,
      ['services', svc, 'deploy', 'resources'],
      ' pitfall 3: hard memory cap (MEMORY_LIMITS); without one it grows until the OOM killer (exit 137)',
    )
  }

  for (const svc of enabled.filter((s) => s !== 'proxy')) {
    const ports = publishedPorts(input, svc)
    const local = ports.map(onLoopback)
    if (local.every((p, i) => p === ports[i])) continue
    doc.setIn(['services', svc, 'ports'], tagged(doc, local, '!override'))
    commentOn(
      doc,
      ['services', svc, 'ports'],
      ' published on 127.0.0.1 only: this PostHog version published them on every interface',
    )
  }

  if (enabled.includes('proxy')) {
    doc.setIn(['services', 'proxy', 'ports'], tagged(doc, [`127.0.0.1:${input.proxyPort}:80`], '!override'))
    commentOn(
      doc,
      ['services', 'proxy', 'ports'],
      ' only on 127.0.0.1:POSTHOG_PROXY_HTTP_PORT (frpc forwards it); replaces the public 80:80 and 443:443',
    )
    const caddyfile = baseCaddyfileOf(input)
    if (caddyfile) {
      doc.setIn(
        ['services', 'proxy', 'environment', 'CADDYFILE'],
        buildCaddyfile(caddyfile, missingUpstream(services, plan)),
      )
      commentOn(
        doc,
        ['services', 'proxy', 'environment'],
        ' plain HTTP for any host behind the TLS-terminating nginx: no ACME, X-Forwarded-* trusted from private ranges;\n routes to switched-off services answer 404 naming the switch instead of a 502',
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
    const own = environmentKeys(input.hobby, input.base, svc)
    const tlsOff = NODE_REDIS_TLS_OFF.filter((k) => !own.includes(k))
    for (const k of tlsOff) doc.setIn(['services', svc, 'environment', k], 'false')
    if (tlsOff[0])
      commentOn(
        doc,
        ['services', svc, 'environment', tlsOff[0]],
        " the node Redis clients default to TLS, which the stack's Redis does not speak (connect ETIMEDOUT)",
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

  boundDiskUse(doc, input, enabled)

  return {
    yaml: doc.toString({ lineWidth: 0 }),
    notices,
    services,
    enabledServices: enabled,
    disabledServices: disabled,
    plan,
  }
}

type PortSpec = string | number | Record<string, unknown>

/** Every port the service publishes, its own and those the services it extends add (Compose merges them). */
function publishedPorts(input: OverrideInput, svc: string): PortSpec[] {
  return serviceChain(input.hobby, input.base, svc)
    .reverse()
    .flatMap((def) => (Array.isArray(def.ports) ? (def.ports as PortSpec[]) : []))
}

const ANY_ADDRESS = /^(?:0\.0\.0\.0|\[::\]|::)$/
const EXPLICIT_ADDRESS = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[^\]]*\]):/

/** A port binding on 127.0.0.1: `8081:8080` -> `127.0.0.1:8081:8080`; an explicit address is kept unless it means every interface. */
export function onLoopback(port: PortSpec): PortSpec {
  if (typeof port === 'number') return `127.0.0.1::${port}`
  if (typeof port === 'object') {
    const ip = typeof port.host_ip === 'string' ? port.host_ip : ''
    return ip && !ANY_ADDRESS.test(ip) ? port : { ...port, host_ip: '127.0.0.1' }
  }
  const m = EXPLICIT_ADDRESS.exec(port)
  if (m) return ANY_ADDRESS.test(m[1]!) ? `127.0.0.1:${port.slice(m[0].length)}` : port
  return port.includes(':') ? `127.0.0.1:${port}` : `127.0.0.1::${port}`
}

/** Disk use bounded out of the box: what each service keeps growing, capped where upstream does not. */
function boundDiskUse(doc: Document, input: OverrideInput, enabled: string[]): void {
  const unrotated = enabled.filter(
    (s) => effectiveValue(input.hobby, input.base, s, ['logging']) === undefined,
  )
  for (const svc of unrotated) {
    doc.setIn(['services', svc, 'logging'], DEFAULT_LOGGING)
    commentOn(
      doc,
      ['services', svc, 'logging'],
      " container log rotated (json-file, 3 x 50 MB): Docker's default keeps every line until the disk is full",
    )
  }
  if (enabled.includes('zookeeper')) {
    const own = environmentKeys(input.hobby, input.base, 'zookeeper')
    const missing = Object.entries(ZOOKEEPER_PURGE).filter(([k]) => !own.includes(k))
    for (const [k, v] of missing) doc.setIn(['services', 'zookeeper', 'environment', k], v)
    if (missing[0])
      commentOn(
        doc,
        ['services', 'zookeeper', 'environment', missing[0][0]],
        ' ZooKeeper purges old snapshots hourly, keeping 3: without it, it grew 25 GB in five days (PostHog #14965)',
      )
  }
  if (enabled.includes('clickhouse')) {
    doc.setIn(
      ['services', 'clickhouse', 'volumes'],
      [`./${CLICKHOUSE_CONFIG_FILE}:${CLICKHOUSE_CONFIG_MOUNT}:ro`],
    )
    commentOn(
      doc,
      ['services', 'clickhouse', 'volumes'],
      " ClickHouse's own system logs (query_log, trace_log, part_log, ...) expire after 7 days and its server log\n is quieter: otherwise they grow without bound inside the data volume (added to upstream's mounts)",
    )
  }
}

/**
 * ClickHouse config.d file: a TTL on the system log tables PostHog's config.xml turns on (naming
 * one it leaves off would turn that one on), and a warning-level server log of bounded size in
 * place of its `trace` level, 10 x 1000M inside the container. Elements merge into the server's
 * config by name.
 */
export function clickhouseLogsConfig(days = 7): string {
  const tables = [
    'query_log',
    'query_thread_log',
    'query_views_log',
    'part_log',
    'trace_log',
    'metric_log',
    'asynchronous_metric_log',
    'session_log',
  ]
  const lines = [
    '<!-- Written by posthog-homelab (scripts/prepare.mts); rewritten on every run. -->',
    '<clickhouse>',
    '    <logger>',
    '        <level>warning</level>',
    '        <size>100M</size>',
    '        <count>3</count>',
    '    </logger>',
    ...tables.flatMap((t) => [
      `    <${t}>`,
      `        <ttl>event_date + INTERVAL ${days} DAY DELETE</ttl>`,
      `    </${t}>`,
    ]),
    '</clickhouse>',
    '',
  ]
  return lines.join('\n')
}
