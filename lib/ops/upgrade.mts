// The plan of an upgrade (pure): what the new compose files change (services, images, the major
// versions of PostgreSQL and ClickHouse), which services must stop while `web` migrates, and the
// plan as printed. The journal is upgrade-journal.mts; the steps: upgrade-run.mts (the entry),
// upgrade-stage.mts (before the switch) and upgrade-switch.mts (from it on, and the rollback).
import YAML from 'yaml'
import { interpolate } from '../stack/compose.mts'

// ---------------------------------------------------------------------------------------------
// Compose files

type ServiceDef = { image?: unknown; extends?: { service?: unknown; file?: unknown } | string }

function servicesOf(text: string | undefined): Record<string, ServiceDef> {
  if (!text) return {}
  const doc = YAML.parse(text, { merge: true, logLevel: 'silent' }) as {
    services?: Record<string, ServiceDef>
  }
  return doc?.services ?? {}
}

export function composeServiceNames(composeText: string | undefined): string[] {
  return Object.keys(servicesOf(composeText)).sort()
}

export function serviceDiff(before: string[], after: string[]): { added: string[]; removed: string[] } {
  return {
    added: after.filter((s) => !before.includes(s)).sort(),
    removed: before.filter((s) => !after.includes(s)).sort(),
  }
}

/** Each service's image as written (following `extends` into the base file), before interpolation. */
export function serviceImages(composeText: string | undefined, baseText?: string): Record<string, string> {
  const services = servicesOf(composeText)
  const base = servicesOf(baseText)
  const out: Record<string, string> = {}
  for (const [name, def] of Object.entries(services)) {
    let image = def?.image
    const ext = def?.extends
    const parent = typeof ext === 'string' ? ext : ext?.service
    if (image === undefined && typeof parent === 'string') image = base[parent]?.image
    if (typeof image === 'string') out[name] = image
  }
  return out
}

/** The images the stack runs (interpolated, sorted, unique), i.e. what `compose pull` fetches. */
export function composeImages(
  composeText: string | undefined,
  baseText: string | undefined,
  env: Record<string, string | undefined>,
  disabled: string[] = [],
): string[] {
  const images = Object.entries(serviceImages(composeText, baseText))
    .filter(([svc]) => !disabled.includes(svc))
    .map(([, image]) => interpolate(image, env).trim())
    .filter(Boolean)
  return [...new Set(images)].sort()
}

// ---------------------------------------------------------------------------------------------
// Major versions of the data stores: a new PostgreSQL major cannot read the old data directory;
// ClickHouse has no semantic major, and each YY.M release line may change its storage.

/**
 * Each service's image as Compose runs it: the first file (following `extends` into the base),
 * then every later file that sets `image:` (the generated override, docker-compose.local.yml),
 * interpolated.
 */
export function effectiveImages(
  files: (string | undefined)[],
  baseText: string | undefined,
  env: Record<string, string | undefined>,
): Record<string, string> {
  const [first, ...later] = files
  const images: Record<string, string> = serviceImages(first, baseText)
  for (const text of later)
    for (const [svc, def] of Object.entries(servicesOf(text)))
      if (typeof def?.image === 'string') images[svc] = def.image
  return Object.fromEntries(
    Object.entries(images).map(([svc, image]) => [svc, interpolate(image, env).trim()]),
  )
}

/** The tag of an image reference (`postgres:15.12-alpine` -> `15.12-alpine`); digests are ignored. */
function imageTag(image: string): string | undefined {
  const ref = image.split('@')[0]!
  const name = ref.slice(ref.lastIndexOf('/') + 1)
  const colon = name.lastIndexOf(':')
  return colon >= 0 ? name.slice(colon + 1) : undefined
}

/** PostgreSQL's major (`15.12-alpine` -> `15`), ClickHouse's release line (`26.6.2.158` -> `26.6`). */
export function imageVersion(image: string, engine: Engine): string | undefined {
  const tag = imageTag(image)
  const m = tag && (engine === 'PostgreSQL' ? /^(\d+)(?:[.-]|$)/ : /^(\d+\.\d+)(?:[.-]|$)/).exec(tag)
  return m ? m[1] : undefined
}

export type Engine = 'PostgreSQL' | 'ClickHouse'

const ENGINES: Record<string, Engine> = { db: 'PostgreSQL', clickhouse: 'ClickHouse' }

export interface MajorChange {
  service: string
  engine: Engine
  fromImage: string
  toImage: string
  /** Major (PostgreSQL) or release line (ClickHouse); undefined when the tag does not say. */
  from?: string
  to?: string
  /** What the upgrade must treat specially; `unknown`: the images differ and a tag does not tell. */
  kind: 'major' | 'downgrade' | 'unknown'
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++)
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0)
  return 0
}

/** The data stores whose version line changes between two sets of effective images. */
export function majorChanges(before: Record<string, string>, after: Record<string, string>): MajorChange[] {
  const out: MajorChange[] = []
  for (const [service, engine] of Object.entries(ENGINES)) {
    const fromImage = before[service]
    const toImage = after[service]
    if (!fromImage || !toImage || fromImage === toImage) continue
    const from = imageVersion(fromImage, engine)
    const to = imageVersion(toImage, engine)
    const base = { service, engine, fromImage, toImage, from, to }
    if (from === undefined || to === undefined) out.push({ ...base, kind: 'unknown' })
    else if (compareVersions(to, from) < 0) out.push({ ...base, kind: 'downgrade' })
    else if (from !== to) out.push({ ...base, kind: 'major' })
  }
  return out
}

const APP_WORKERS = ['worker', 'temporal-django-worker']
const INGESTION = /^(plugins|ingestion-|recording-api|capture|replay-capture|property-defs)/

/**
 * Services stopped while `web` runs the new migrations (pitfall 4): everything on the node image,
 * the ingestion services, and the Django workers, which would run old code on a new schema.
 * Data stores, `proxy` (it carries /_health) and `web` itself keep running.
 */
export function servicesToStop(composeText: string | undefined, baseText?: string): string[] {
  const images = serviceImages(composeText, baseText)
  return composeServiceNames(composeText).filter(
    (svc) =>
      svc !== 'web' &&
      (/-node(:|$)/.test(images[svc] ?? '') || INGESTION.test(svc) || APP_WORKERS.includes(svc)),
  )
}

// ---------------------------------------------------------------------------------------------
// Plan (printed by --dry-run and before a real upgrade)

export interface UpgradePlan {
  from: string
  to: string
  fromCommit?: string
  toCommit?: string
  added: string[]
  removed: string[]
  images: string[]
  stop: string[]
  /** PostgreSQL and ClickHouse version lines that change. */
  majors?: MajorChange[]
  /** --postgres-major: move the data into the new PostgreSQL major. */
  postgresMajor?: boolean
  /** --clickhouse: ClickHouse is backed up too. */
  clickhouseBackup?: boolean
}

export function formatPlan(plan: UpgradePlan): string {
  const commit = (c?: string) => (c ? ` (${c.slice(0, 12)})` : '')
  const list = (xs: string[]) => (xs.length ? xs.join(', ') : 'none')
  const pg = plan.majors?.find((m) => m.engine === 'PostgreSQL' && m.kind === 'major')
  const moveData = pg && plan.postgresMajor
  return [
    `upgrade plan: PostHog ${plan.from}${commit(plan.fromCommit)} -> ${plan.to}${commit(plan.toCommit)}`,
    `  services added: ${list(plan.added)}`,
    `  services removed: ${list(plan.removed)}`,
    `  images to pull (${plan.images.length}): ${list(plan.images)}`,
    ...(plan.majors ?? []).map((m) => `  ${describeMajor(m, plan)}`),
    `  backup: .env and PostgreSQL${moveData ? ' (every database on the server)' : ''}` +
      (plan.clickhouseBackup
        ? ' and ClickHouse'
        : '; ClickHouse is NOT backed up (--clickhouse backs it up)'),
    '  steps: 1 backup  2 prepare the new compose files  3 pull images  4 stop ' +
      `${moveData ? 'everything, keep the old PostgreSQL volume aside, start the new db on a new volume, restore the backup into it' : list(plan.stop)}` +
      '  5 start web alone, wait for /_health 200 (migrations)  6 start everything  7 wait for health',
    '  on failure after the pull: the previous files and tag are put back and the previous version started' +
      (moveData ? ' on its own PostgreSQL volume' : ''),
  ].join('\n')
}

/** One plan line per data store whose version line changes. */
export function describeMajor(
  m: MajorChange,
  plan: Pick<UpgradePlan, 'postgresMajor' | 'clickhouseBackup'>,
): string {
  const what = `${m.engine} ${m.from ?? '?'} -> ${m.to ?? '?'} (${m.service}: ${m.fromImage} -> ${m.toImage})`
  if (m.kind === 'unknown')
    return `${what}: the image tags do not tell whether the version line changes; check its release notes before upgrading`
  if (m.kind === 'downgrade') return `${what}: a downgrade, which ${m.engine} data does not survive; refused`
  if (m.engine === 'PostgreSQL')
    return plan.postgresMajor
      ? `${what}: a major version; the data is moved by backup and restore into a new volume, the old volume is kept`
      : `${what}: a major version the new server cannot read the old data of; refused without --postgres-major`
  return `${what}: a new release line; ${plan.clickhouseBackup ? 'ClickHouse is backed up first' : 'ClickHouse is NOT backed up (pass --clickhouse to back it up first)'}`
}
