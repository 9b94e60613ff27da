// The secret guard: a changed POSTHOG_SECRET or ENCRYPTION_SALT_KEYS makes existing data
// unreadable. Their fingerprints are recorded at the first start; later runs compare against them,
// and new secrets on a started stack (or on volumes this STACK_DIR has no record of) are refused
// unless the user accepts them.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure, UsageError } from './cli.mts'
import { projectVolumes } from './docker.mts'
import type { Config } from './env.mts'
import type { EnvPlan } from './env-file.mts'
import { readIfExists, writeFileAtomic } from './fs.mts'

export const GUARDED_SECRETS = ['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS'] as const

export function fingerprint(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

export function fingerprintFile(stackDir: string): string {
  return path.join(stackDir, 'secrets.sha256.json')
}

export function secretFingerprints(cfg: Config): Record<string, string> {
  return Object.fromEntries(GUARDED_SECRETS.map((k) => [k, fingerprint(cfg.raw[k] ?? '')]))
}

/** Keys whose secret differs from the fingerprint recorded after the first healthy start. */
export function changedSecrets(cfg: Config): string[] {
  const file = fingerprintFile(cfg.stackDir)
  const text = readIfExists(file)
  if (text === undefined) return []
  let recorded: Record<string, string>
  try {
    recorded = JSON.parse(text) as Record<string, string>
  } catch {
    throw new RuntimeFailure(
      `${file} (the fingerprints of the secrets the stack was first started with) is not valid JSON`,
      'put it back from a backup of STACK_DIR, or delete it if the secrets in .env are the ones the data was written with',
    )
  }
  return secretsDifferingFrom(recorded, cfg)
}

/** Guarded keys whose secret in `cfg` differs from its recorded fingerprint (keys not recorded pass). */
export function secretsDifferingFrom(recorded: Record<string, string>, cfg: Config): string[] {
  const now = secretFingerprints(cfg)
  return GUARDED_SECRETS.filter((k) => recorded[k] !== undefined && recorded[k] !== now[k])
}

export function assertSecretsUnchanged(cfg: Config, accept: boolean): void {
  if (accept) return
  const changed = changedSecrets(cfg)
  if (changed.length === 0) return
  throw new UsageError(
    `${changed.join(' and ')} differ from the ones this stack was first started with; existing data would become unreadable. ` +
      `Put the original values back in ${cfg.envFile}, or pass --accept-new-secrets if you really mean to change them`,
  )
}

export function recordSecretFingerprints(cfg: Config): void {
  fs.mkdirSync(cfg.stackDir, { recursive: true })
  writeFileAtomic(fingerprintFile(cfg.stackDir), `${JSON.stringify(secretFingerprints(cfg), null, 2)}\n`, {
    mode: 0o600,
  })
}

/**
 * New secrets on a stack that was started with others would make its data unreadable: refused
 * (UsageError) before anything is generated, whether the secrets were emptied or the env file is
 * missing, unless the user accepts it.
 */
export function refuseNewSecretsOnStartedStack(plan: EnvPlan, accept: boolean): void {
  const guarded = plan.toGenerate.filter((k) => (GUARDED_SECRETS as readonly string[]).includes(k))
  if (accept || guarded.length === 0 || !fs.existsSync(fingerprintFile(plan.stackDir))) return
  const what = plan.exists
    ? `${guarded.join(' and ')} ${guarded.length > 1 ? 'are' : 'is'} empty in ${plan.envFile}`
    : `${plan.envFile} is missing`
  throw new UsageError(
    `${what}, but the stack in ${plan.stackDir} was started with secrets; new ones would make its data unreadable. ` +
      'Restore your .env (or its backup), or pass --accept-new-secrets',
  )
}

/**
 * A second checkout (or a new STACK_DIR) would start the existing volumes with new secrets, and
 * the data in them would be unreadable: refused unless this STACK_DIR knows the secrets.
 */
export async function refuseForeignVolumes(plan: EnvPlan, accept: boolean): Promise<void> {
  if (accept || fs.existsSync(fingerprintFile(plan.stackDir))) return
  const volumes = await projectVolumes()
  if (volumes.length === 0) return
  throw new UsageError(
    `Docker already has this stack's volumes (${volumes.slice(0, 2).join(', ')}${volumes.length > 2 ? ', ...' : ''}), but ${plan.stackDir} has no record of the secrets they were written with; new secrets would make that data unreadable. ` +
      "Bring the .env (and STACK_DIR/secrets.sha256.json) of the checkout that created them, or pass --accept-new-secrets if this .env's secrets are the right ones",
  )
}
