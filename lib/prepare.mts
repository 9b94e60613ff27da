// prepareStack: everything `STACK_DIR` needs before `docker compose up`: the PostHog checkout
// (shallow, partial, sparse), the copied compose files, the generated override and env file,
// the compose/ scripts and share/ (GeoLite2). Re-runs change nothing that is already right.
import type { Config } from './env.mts'

export interface PrepareOptions {
  /** Download GeoLite2-City into share/ (failures are a notice, never fatal). */
  geoip: boolean
  /** Progress lines (the script passes `say`). */
  log: (line: string) => void
}

export interface PrepareResult {
  /** Files written (created or updated), relative to STACK_DIR. Empty when nothing changed. */
  changed: string[]
  /** The PostHog commit checked out in STACK_DIR/posthog. */
  commit: string
  /** Every service the copied compose file defines. */
  services: string[]
  enabledServices: string[]
  /** DISABLED_SERVICES that the compose file defines (deploy.replicas: 0). */
  disabledServices: string[]
  notices: string[]
}

export async function prepareStack(cfg: Config, opts: PrepareOptions): Promise<PrepareResult> {
  void cfg
  void opts
  throw new Error('prepareStack: not implemented yet')
}
