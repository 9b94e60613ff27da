// The PostHog features a user can switch off in .env (DISABLED_FEATURES) to save memory, as data:
// what each costs in product terms and the services that exist only for it; and the services
// PostHog cannot run without. lib/stack/features.mts plans the switch-off from these.

export interface Feature {
  /** What a user loses with it off, in product terms. */
  cost: string
  services: string[]
}

export const FEATURES: Record<string, Feature> = {
  'session-replay': {
    cost: 'no session recordings (turn off "Record user sessions" in the project settings so browsers stop sending them)',
    services: ['replay-capture', 'ingestion-sessionreplay', 'recording-api'],
  },
  'error-tracking': {
    cost: 'no error tracking: exceptions are not grouped into issues and stack traces are not symbolicated',
    services: ['cymbal', 'cymbal-resolution', 'ingestion-error-tracking'],
  },
  'live-events': {
    cost: 'no live events view (Activity > Live) and no live visitor counts',
    services: ['livestream'],
  },
  'temporal-ui': {
    cost: 'no Temporal web UI and admin tools (debugging tools for background workflows; the workflows still run)',
    services: ['temporal-ui', 'temporal-admin-tools'],
  },
}

/** Services PostHog cannot run without: Caddy routes /e/, /batch, /flags and every page to them. */
export const ESSENTIAL_SERVICES: Record<string, string> = {
  web: 'every page',
  capture: '/e/ and /batch (event capture)',
  'feature-flags': '/flags (feature flags)',
  proxy: 'every request (it is the only published port)',
}

/** Every service the named features map to (whether or not this PostHog version has it). */
export function featureServices(names: string[]): string[] {
  return names.flatMap((n) => FEATURES[n]?.services ?? [])
}

export function unknownFeatures(names: string[]): string[] {
  return names.filter((n) => !(n in FEATURES))
}
