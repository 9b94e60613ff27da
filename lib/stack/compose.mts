// Reading PostHog's compose files (pure): the services a hobby file defines, their effective
// depends_on, the paths they bind-mount from ./posthog/, build contexts, and the variables the
// files interpolate. Nothing here touches the disk or runs a process.
import { parseDocument } from 'yaml'
import { UsageError } from '../core/cli.mts'

export type ServiceDef = Record<string, unknown>

export interface ComposeFile {
  services: Record<string, ServiceDef>
  /** The text the file was parsed from (variables are scanned from parsed values, not comments). */
  text: string
}

/** Tags a user's compose file may carry (Compose 2.24+); parsed as plain values. */
const COMPOSE_TAGS = (['!override', '!reset'] as const).flatMap((tag) =>
  (['seq', 'map'] as const).map((collection) => ({ tag, collection, resolve: (v: unknown) => v })),
)

export function parseCompose(text: string, name = 'compose file'): ComposeFile {
  // merge: true resolves the base file's `<<: *worker` keys the way Compose does.
  const doc = parseDocument(text, { merge: true, customTags: COMPOSE_TAGS })
  if (doc.errors.length)
    throw new UsageError(`${name} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`)
  const data = (doc.toJS({ maxAliasCount: -1 }) ?? {}) as { services?: Record<string, ServiceDef | null> }
  if (typeof data !== 'object' || !data.services || typeof data.services !== 'object')
    throw new UsageError(`${name} defines no services`)
  const services: Record<string, ServiceDef> = {}
  for (const [svc, def] of Object.entries(data.services)) services[svc] = def ?? {}
  return { services, text }
}

export function serviceNames(file: ComposeFile): string[] {
  return Object.keys(file.services)
}

export type DependsOn = Record<string, string>

/** `depends_on` in either syntax as `{service: condition}` (the list form means service_started). */
export function normalizeDependsOn(value: unknown): DependsOn {
  const out: DependsOn = {}
  if (Array.isArray(value)) for (const s of value) out[String(s)] = 'service_started'
  else if (value && typeof value === 'object')
    for (const [s, v] of Object.entries(value as Record<string, { condition?: string } | null>))
      out[s] = v?.condition ?? 'service_started'
  return out
}

interface Extends {
  file?: string
  service: string
}

function extendsOf(def: ServiceDef): Extends | undefined {
  const ext = def.extends
  if (typeof ext === 'string') return { service: ext }
  if (ext && typeof ext === 'object' && typeof (ext as Extends).service === 'string') return ext as Extends
  return undefined
}

/**
 * Each service's depends_on after `extends`, as Compose v2 computes it.
 *
 * The old Compose file reference said depends_on is "never shared between services that use
 * extends", but Compose v2 (compose-go) follows the Compose Specification, which merges the
 * extended service's depends_on into the extending one (compose-spec/compose-spec#470; see
 * docker/compose#10905 and #12360, where `config` shows the inherited entries, and #12423, where
 * the 2.32.1 regression that dropped them was fixed). Mappings merge key by key, so the local
 * entry wins for a service named in both. Hence the hobby `temporal` still waits for the base's
 * `elasticsearch: service_healthy`.
 */
export function effectiveDependsOn(hobby: ComposeFile, base?: ComposeFile): Record<string, DependsOn> {
  const out: Record<string, DependsOn> = {}
  const resolve = (file: ComposeFile, name: string, seen: Set<string>): DependsOn => {
    const def = file.services[name]
    if (!def || seen.has(name)) return {}
    seen.add(name)
    const ext = extendsOf(def)
    let inherited: DependsOn = {}
    if (ext) {
      const target = ext.file ? base : file
      if (target) inherited = resolve(target, ext.service, ext.file ? new Set() : seen)
    }
    return { ...inherited, ...normalizeDependsOn(def.depends_on) }
  }
  for (const name of serviceNames(hobby)) out[name] = resolve(hobby, name, new Set())
  return out
}

/** The base-file service a hobby service extends (`extends.file`), for reading inherited settings. */
export function extendedBaseService(
  hobby: ComposeFile,
  base: ComposeFile,
  name: string,
): ServiceDef | undefined {
  const ext = extendsOf(hobby.services[name] ?? {})
  if (!ext?.file) return undefined
  return base.services[ext.service]
}

/**
 * A service's definitions from the most specific to the least: its own, then each service it
 * extends, in the same file or (with `extends.file`) in the base file.
 */
export function serviceChain(hobby: ComposeFile, base: ComposeFile | undefined, name: string): ServiceDef[] {
  const chain: ServiceDef[] = []
  let file: ComposeFile | undefined = hobby
  let service: string | undefined = name
  const seen = new Set<string>()
  while (file && service && !seen.has(`${file === hobby}:${service}`)) {
    seen.add(`${file === hobby}:${service}`)
    const def: ServiceDef | undefined = file.services[service]
    if (!def) break
    chain.push(def)
    const ext = extendsOf(def)
    if (ext?.file) file = base
    service = ext?.service
  }
  return chain
}

/** The value at `keys` in the service as Compose merges it: the most specific definition that sets it. */
export function effectiveValue(
  hobby: ComposeFile,
  base: ComposeFile | undefined,
  name: string,
  keys: string[],
): unknown {
  for (const def of serviceChain(hobby, base, name)) {
    let value: unknown = def
    for (const k of keys)
      value = value && typeof value === 'object' ? (value as Record<string, unknown>)[k] : undefined
    if (value !== undefined) return value
  }
  return undefined
}

/** The names of a service's environment variables, from either syntax (`KEY: v` or `- KEY=v`), merged. */
export function environmentKeys(hobby: ComposeFile, base: ComposeFile | undefined, name: string): string[] {
  const keys = new Set<string>()
  for (const def of serviceChain(hobby, base, name)) {
    const env = def.environment
    if (Array.isArray(env)) for (const item of env) keys.add(String(item).split('=')[0]!)
    else if (env && typeof env === 'object') for (const k of Object.keys(env)) keys.add(k)
  }
  return [...keys]
}

export interface EnvFileUse {
  service: string
  /** Path relative to the compose files' folder (STACK_DIR, and the repository root). */
  path: string
  /** `required: false` entries may be missing. */
  required: boolean
}

function envFileEntries(value: unknown): { path: string; required: boolean }[] {
  const items = Array.isArray(value) ? value : value === undefined ? [] : [value]
  return items.flatMap((item) => {
    if (typeof item === 'string') return [{ path: item, required: true }]
    const long = item as { path?: unknown; required?: unknown } | null
    return typeof long?.path === 'string' ? [{ path: long.path, required: long.required !== false }] : []
  })
}

/**
 * The env_files the services read, wherever they are declared (in the hobby file or a base
 * service it extends): Compose refuses to start when a required one is missing, so the checkout
 * must hold each of them, whatever this PostHog version names them.
 */
export function envFiles(hobby: ComposeFile, base?: ComposeFile): EnvFileUse[] {
  const out: EnvFileUse[] = []
  for (const service of serviceNames(hobby)) {
    for (const def of serviceChain(hobby, base, service)) {
      for (const entry of envFileEntries(def.env_file)) {
        const rel = plainPath(entry.path.replace(/^\.\//, ''))
        if (!rel)
          throw new UsageError(
            `service ${service} reads the env_file '${entry.path}', which is not a plain path next to the compose files`,
          )
        if (!out.some((o) => o.service === service && o.path === rel))
          out.push({ service, path: rel, required: entry.required })
      }
    }
  }
  return out
}

/** A relative path without `..`, `.` or empty parts, `$` or line breaks; undefined otherwise. */
function plainPath(rel: string): string | undefined {
  const clean = rel.replace(/\/+$/, '')
  if (!clean || clean.startsWith('/') || /[$\n\\]/.test(clean)) return undefined
  return clean.split('/').some((p) => p === '..' || p === '.' || p === '') ? undefined : clean
}

export const POSTHOG_PREFIX = './posthog/'

export interface MountedPath {
  service: string
  /** Path inside the PostHog repository, without a trailing slash. */
  path: string
}

function volumeSource(v: unknown): string | undefined {
  if (typeof v === 'string') return v.split(':')[0]
  if (v && typeof v === 'object') {
    const long = v as { type?: string; source?: string }
    if ((long.type === undefined || long.type === 'bind') && typeof long.source === 'string')
      return long.source
  }
  return undefined
}

function repoPath(source: string, service: string): string | undefined {
  if (!source.startsWith(POSTHOG_PREFIX)) return undefined
  const rel = plainPath(source.slice(POSTHOG_PREFIX.length))
  if (!rel)
    throw new UsageError(`service ${service} mounts '${source}', which is not a plain path inside ./posthog/`)
  return rel
}

/**
 * Paths the services bind-mount from ./posthog/ (relative to the PostHog repository), in file
 * order: their own mounts and those of the base services they extend.
 */
export function mountedPaths(hobby: ComposeFile, base?: ComposeFile): MountedPath[] {
  const out: MountedPath[] = []
  for (const service of serviceNames(hobby)) {
    for (const def of serviceChain(hobby, base, service)) {
      for (const v of Array.isArray(def.volumes) ? def.volumes : []) {
        const source = volumeSource(v)
        const rel = source && repoPath(source, service)
        if (rel && !out.some((m) => m.path === rel)) out.push({ service, path: rel })
      }
    }
  }
  return out
}

/** `build.context` directories under ./posthog/ (not fetched: the stack runs pulled images). */
export function buildContexts(file: ComposeFile): MountedPath[] {
  const out: MountedPath[] = []
  for (const [service, def] of Object.entries(file.services)) {
    const build = def.build
    const context = typeof build === 'string' ? build : (build as { context?: unknown } | undefined)?.context
    const rel = typeof context === 'string' ? repoPath(context, service) : undefined
    if (rel) out.push({ service, path: rel })
  }
  return out
}

export interface VariableUse {
  name: string
  /** `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}`, `${VAR+x}`: Compose never leaves it blank by surprise. */
  hasDefault: boolean
  /** `${VAR:?msg}` or `${VAR?msg}`: Compose refuses to start without it. */
  required: boolean
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/

/**
 * The reference that starts at the `$` at `at`, in Compose's syntax: `$$` (an escaped dollar,
 * no name), `$NAME`, or `${NAME<op><inner>}` with op one of `:-` `-` `:?` `?` `:+` `+` (or none).
 * `end` is the index just after it; `closed` is false for a `${` that never ends.
 */
interface Reference {
  name?: string
  op: string
  inner: string
  end: number
  closed: boolean
}

function referenceAt(value: string, at: number): Reference {
  const next = value[at + 1]
  if (next === '$') return { op: '', inner: '', end: at + 2, closed: true }
  if (next !== '{') {
    const m = NAME.exec(value.slice(at + 1))
    return { name: m?.[0], op: '', inner: '', end: at + 1 + (m?.[0].length ?? 0), closed: true }
  }
  const m = NAME.exec(value.slice(at + 2))
  if (!m) return { op: '', inner: '', end: at + 2, closed: false }
  let j = at + 2 + m[0].length
  const op = /^(:-|-|:\?|\?|:\+|\+)/.exec(value.slice(j))?.[0] ?? ''
  j += op.length
  let depth = 1
  const start = j
  while (j < value.length && depth > 0) {
    if (value.startsWith('$$', j)) j += 2
    else if (value.startsWith('${', j)) {
      depth++
      j += 2
    } else {
      if (value[j] === '}') depth--
      j++
    }
  }
  return { name: m[0], op, inner: value.slice(start, j - 1), end: j, closed: depth === 0 }
}

/** Variables referenced in one string, following Compose's syntax; `$$` is an escaped dollar. */
export function variablesIn(value: string, out = new Map<string, VariableUse>()): Map<string, VariableUse> {
  const note = (name: string, hasDefault: boolean, required: boolean) => {
    const prev = out.get(name)
    // A variable used once without a default needs a value, whatever other uses say.
    out.set(name, {
      name,
      hasDefault: prev ? prev.hasDefault && hasDefault : hasDefault,
      required: (prev?.required ?? false) || required,
    })
  }
  let i = 0
  while (i < value.length) {
    const at = value.indexOf('$', i)
    if (at < 0) break
    const ref = referenceAt(value, at)
    if (ref.name) {
      note(ref.name, ref.op.includes('-') || ref.op.includes('+'), ref.op.includes('?'))
      if (ref.inner) variablesIn(ref.inner, out)
    }
    i = ref.end
  }
  return out
}

/**
 * The string as Compose interpolates it from `env`: `$$` -> `$`; `$VAR`, `${VAR}`; defaults
 * `${VAR:-x}` (unset or empty) and `${VAR-x}` (unset); alternatives `${VAR:+x}` (set and not
 * empty) and `${VAR+x}` (set); `${VAR:?msg}` and `${VAR?msg}` refuse (UsageError) without a
 * value, as Compose refuses to start. Text that is no valid reference stays as it is.
 */
export function interpolate(value: string, env: Record<string, string | undefined>): string {
  let out = ''
  let i = 0
  while (i < value.length) {
    const at = value.indexOf('$', i)
    if (at < 0) break
    const ref = referenceAt(value, at)
    out += value.slice(i, at) + substitute(ref, value.slice(at, ref.end), env)
    i = ref.end
  }
  return out + value.slice(i)
}

function substitute(ref: Reference, raw: string, env: Record<string, string | undefined>): string {
  if (raw === '$$') return '$'
  if (!ref.name || !ref.closed) return raw
  const value = env[ref.name]
  const set = ref.op.startsWith(':') ? Boolean(value) : value !== undefined
  switch (ref.op) {
    case '':
      return ref.inner ? raw : (value ?? '')
    case ':-':
    case '-':
      return set ? value! : interpolate(ref.inner, env)
    case ':+':
    case '+':
      return set ? interpolate(ref.inner, env) : ''
    default:
      if (set) return value!
      throw new UsageError(
        `required variable ${ref.name} is missing a value${ref.inner ? `: ${ref.inner}` : ''}`,
      )
  }
}

function walkStrings(value: unknown, visit: (s: string) => void): void {
  if (typeof value === 'string') visit(value)
  else if (Array.isArray(value)) for (const v of value) walkStrings(v, visit)
  else if (value && typeof value === 'object') for (const v of Object.values(value)) walkStrings(v, visit)
}

/**
 * Variables Compose interpolates when loading the hobby file: every value of the hobby file
 * plus every value of the base-file services it extends (keys and comments are not interpolated).
 */
export function interpolatedVariables(hobby: ComposeFile, base?: ComposeFile): VariableUse[] {
  const out = new Map<string, VariableUse>()
  walkStrings(hobby.services, (s) => variablesIn(s, out))
  if (base) {
    for (const name of serviceNames(hobby)) {
      const def = extendedBaseService(hobby, base, name)
      if (def) walkStrings(def, (s) => variablesIn(s, out))
    }
  }
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name))
}

/** Image string of a service after extends (hobby value wins), uninterpolated. */
export function imageOf(hobby: ComposeFile, base: ComposeFile | undefined, name: string): string {
  const own = hobby.services[name]?.image
  if (typeof own === 'string') return own
  const inherited = base ? extendedBaseService(hobby, base, name)?.image : undefined
  return typeof inherited === 'string' ? inherited : ''
}

/** Node services run `${REGISTRY_URL}-node` (posthog/posthog-node) in some PLUGIN_SERVER_MODE. */
export function isNodeService(image: string): boolean {
  return /\$\{?REGISTRY_URL\}?-node\b|posthog\/posthog-node\b/.test(image)
}
