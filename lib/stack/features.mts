// PostHog features a user can switch off to save memory, at the level users think in, each mapped
// to the services that exist only for it (as data). DISABLED_FEATURES picks features;
// DISABLED_SERVICES stays for fine control. `planDisabled` turns both into the set of services to
// switch off: names this PostHog version lacks are skipped with a notice, a service that only
// switched-off services depend on goes with them, and nothing an enabled service waits for, nor
// a service PostHog cannot run without, is ever switched off.
import { UsageError } from '../core/cli.mts'
import { ESSENTIAL_SERVICES, FEATURES } from '../core/feature-catalog.mts'
import type { DependsOn } from './compose.mts'

const BLOCKING = new Set(['service_healthy', 'service_completed_successfully'])

export interface DisablePlan {
  /** Services to switch off, in file order. */
  disabled: string[]
  /** Why each is off: `feature session-replay`, `DISABLED_SERVICES`, or `only served cymbal`. */
  reasons: Record<string, string>
  /** Features that are off and have at least one service in this PostHog version. */
  features: string[]
  notices: string[]
}

/**
 * The services to switch off for `features` and `services`, given the services this PostHog
 * version defines and their effective depends_on. Throws UsageError for an essential service or
 * one an enabled service waits for (healthy / completed).
 */
export function planDisabled(
  defined: string[],
  dependsOn: Record<string, DependsOn>,
  wanted: { features: string[]; services: string[] },
): DisablePlan {
  const reasons: Record<string, string> = {}
  const notices: string[] = []
  const features: string[] = []
  for (const name of wanted.features) {
    const feature = FEATURES[name]
    if (!feature)
      throw new UsageError(
        `DISABLED_FEATURES names ${name}, which is not a feature: use ${Object.keys(FEATURES).join(', ')}`,
      )
    const present = feature.services.filter((s) => defined.includes(s))
    if (present.length === 0) {
      notices.push(
        `${name}: this PostHog version has none of its services (${feature.services.join(', ')}); nothing to switch off`,
      )
      continue
    }
    features.push(name)
    for (const s of present) reasons[s] ??= `feature ${name}`
  }
  for (const name of wanted.services) {
    if (!defined.includes(name))
      notices.push(`DISABLED_SERVICES names ${name}, which this PostHog version does not define; skipped`)
    else reasons[name] ??= 'DISABLED_SERVICES'
  }
  for (const name of Object.keys(reasons)) {
    const route = ESSENTIAL_SERVICES[name]
    if (route)
      throw new UsageError(
        `${reasons[name]} switches off ${name}, which PostHog cannot run without (it serves ${route}): remove it from ${reasons[name]!.startsWith('feature') ? 'DISABLED_FEATURES' : 'DISABLED_SERVICES'}`,
      )
  }
  addOrphans(defined, dependsOn, reasons)
  const disabled = defined.filter((s) => s in reasons)
  for (const svc of defined.filter((s) => !(s in reasons)))
    for (const [dep, condition] of Object.entries(dependsOn[svc] ?? {}))
      if (dep in reasons && BLOCKING.has(condition))
        throw new UsageError(
          `${reasons[dep]} switches off ${dep}, but ${svc} waits for it (${condition}): keep ${dep}, or switch off ${svc} too (DISABLED_SERVICES)`,
        )
  return { disabled, reasons, features, notices }
}

/**
 * A service that other services depend on, all of which are switched off, serves nothing any more
 * (cymbal-resolution exists for cymbal): it goes too, repeatedly, so chains follow.
 */
function addOrphans(
  defined: string[],
  dependsOn: Record<string, DependsOn>,
  reasons: Record<string, string>,
): void {
  for (let changed = true; changed; ) {
    changed = false
    for (const svc of defined) {
      if (svc in reasons || svc in ESSENTIAL_SERVICES) continue
      const dependents = defined.filter((d) => svc in (dependsOn[d] ?? {}))
      if (dependents.length > 0 && dependents.every((d) => d in reasons)) {
        reasons[svc] = `only served ${dependents.join(', ')}`
        changed = true
      }
    }
  }
}
