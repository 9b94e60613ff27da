// Never lose .env or the data's secrets: where STACK_DIR may be, when a secret is generated, and
// how the env file is written.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { mergeEnv } from '../../../lib/core/env.mts'
import { ensureEnvFile, planEnvFile } from '../../../lib/core/env-file.mts'
import { fingerprintFile, refuseNewSecretsOnStartedStack } from '../../../lib/core/secrets.mts'
import { checkStackDir, resolveStackDir, STACK_MARKER } from '../../../lib/core/stack-dir.mts'
import { scratchDir } from '../../helpers/common.ts'

const SECRET = 'f'.repeat(56)
const SALT = 's'.repeat(32)
const TOKEN = 't'.repeat(48)

/** A project folder with .env.example and, unless `env` is undefined, a .env. */
function project(env: string | null = `POSTHOG_SECRET=${SECRET}\nENCRYPTION_SALT_KEYS=${SALT}\n`): string {
  const dir = scratchDir('env-secrets-')
  fs.copyFileSync(path.resolve('.env.example'), path.join(dir, '.env.example'))
  if (env !== null) fs.writeFileSync(path.join(dir, '.env'), env, { mode: 0o600 })
  return dir
}

const read = (dir: string) => fs.readFileSync(path.join(dir, '.env'), 'utf8')

describe('an empty variable never replaces a secret', () => {
  it('is ignored for secret keys, honoured for others', () => {
    const raw = mergeEnv(
      { POSTHOG_SECRET: SECRET, DOMAIN: 'a.example' },
      { POSTHOG_SECRET: '', FRP_TOKEN: '' },
    )
    expect(raw.POSTHOG_SECRET).toBe(SECRET)
    expect(raw.FRP_TOKEN).toBe('')
    expect(mergeEnv({ DISABLED_SERVICES: 'x' }, { DISABLED_SERVICES: '' }).DISABLED_SERVICES).toBe('')
  })
  it('POSTHOG_SECRET= leaves the real secret in .env alone', () => {
    const dir = project()
    const before = read(dir)
    const r = ensureEnvFile({ root: dir, env: { POSTHOG_SECRET: '' } })
    expect(r.generated).toEqual([])
    expect(read(dir)).toBe(before)
  })
  it('FRP_TOKEN= keeps the token the file holds', () => {
    const dir = project(`POSTHOG_SECRET=${SECRET}\nENCRYPTION_SALT_KEYS=${SALT}\nFRP_TOKEN=${TOKEN}\n`)
    const r = ensureEnvFile({ root: dir, env: { FRP_TOKEN: '' }, secretKeys: ['FRP_TOKEN'] })
    expect(r.generated).toEqual([])
    expect(read(dir)).toContain(`FRP_TOKEN=${TOKEN}\n`)
  })
  it('generates only what the file lacks, writing only that line', () => {
    const dir = project(`# mine\nPOSTHOG_SECRET=${SECRET}\nENCRYPTION_SALT_KEYS=\nDOMAIN=localhost # note\n`)
    const r = ensureEnvFile({ root: dir, env: {} })
    expect(r.generated).toEqual(['ENCRYPTION_SALT_KEYS'])
    const text = read(dir)
    expect(text).toMatch(
      new RegExp(
        `^# mine\nPOSTHOG_SECRET=${SECRET}\nENCRYPTION_SALT_KEYS=[0-9a-f]{32}\nDOMAIN=localhost # note\n$`,
      ),
    )
  })
  it('does not generate what the environment supplies', () => {
    const dir = project('ENCRYPTION_SALT_KEYS=\n')
    expect(
      planEnvFile({ root: dir, env: { POSTHOG_SECRET: SECRET, ENCRYPTION_SALT_KEYS: SALT } }).toGenerate,
    ).toEqual([])
  })
})

describe('a symlinked .env', () => {
  it('is written through to its target, the link kept', () => {
    const dir = project(null)
    const elsewhere = path.join(scratchDir('env-target-'), 'posthog.env')
    fs.writeFileSync(elsewhere, 'POSTHOG_SECRET=\n', { mode: 0o600 })
    fs.symlinkSync(elsewhere, path.join(dir, '.env'))
    ensureEnvFile({ root: dir, env: {} })
    expect(fs.lstatSync(path.join(dir, '.env')).isSymbolicLink()).toBe(true)
    expect(fs.readFileSync(elsewhere, 'utf8')).toMatch(/^POSTHOG_SECRET=[0-9a-f]{56}\n/)
    expect(fs.statSync(elsewhere).mode & 0o777).toBe(0o600)
  })
})

describe('new secrets on a started stack', () => {
  function started(dir: string): void {
    fs.mkdirSync(path.join(dir, 'stack'))
    fs.writeFileSync(fingerprintFile(path.join(dir, 'stack')), '{}')
  }
  it('are refused when the secrets were emptied', () => {
    const dir = project('POSTHOG_SECRET=\nENCRYPTION_SALT_KEYS=\n')
    started(dir)
    const plan = planEnvFile({ root: dir, env: {} })
    expect(() => refuseNewSecretsOnStartedStack(plan, false)).toThrow(/are empty in .*started with secrets/)
    expect(() => refuseNewSecretsOnStartedStack(plan, true)).not.toThrow()
  })
  it('are refused when .env is missing, before anything is generated', () => {
    const dir = project(null)
    started(dir)
    expect(() => refuseNewSecretsOnStartedStack(planEnvFile({ root: dir, env: {} }), false)).toThrow(
      /\.env is missing, but the stack .* was started with secrets/,
    )
    expect(fs.existsSync(path.join(dir, '.env'))).toBe(false)
  })
  it('are fine on a stack never started', () => {
    const dir = project(null)
    expect(() => refuseNewSecretsOnStartedStack(planEnvFile({ root: dir, env: {} }), false)).not.toThrow()
  })
})

describe('STACK_DIR', () => {
  const root = () => project()
  const check = (dir: string, value: string) => () => checkStackDir(dir, path.join(dir, '.env'), value)

  it.each([
    ['.', /is or contains the project folder/],
    ['..', /is or contains the project folder/],
    ['/', /is the root folder/],
  ])('refuses %s', (value, why) => {
    expect(check(root(), value)).toThrow(UsageError)
    expect(check(root(), value)).toThrow(why)
  })
  it('refuses the folder holding the env file', () => {
    const dir = root()
    fs.mkdirSync(path.join(dir, 'conf'))
    expect(() => checkStackDir(dir, path.join(dir, 'conf', '.env'), 'conf')).toThrow(/holds the env file/)
  })
  it('refuses a file', () => {
    const dir = root()
    fs.writeFileSync(path.join(dir, 'stack'), 'x')
    expect(check(dir, 'stack')).toThrow(/is a file, not a folder/)
  })
  it("refuses a non-empty folder the toolkit did not write, naming what's in it", () => {
    const dir = root()
    fs.mkdirSync(path.join(dir, 'photos'))
    fs.writeFileSync(path.join(dir, 'photos', 'cat.jpg'), '')
    expect(check(dir, 'photos')).toThrow(/holds files the toolkit did not write \(cat\.jpg\)/)
  })
  it("accepts a missing folder, an empty one, its own (marked, or an older install's files)", () => {
    const dir = root()
    expect(check(dir, 'stack')).not.toThrow()
    fs.mkdirSync(path.join(dir, 'empty'))
    expect(check(dir, 'empty')).not.toThrow()
    fs.mkdirSync(path.join(dir, 'marked'))
    fs.writeFileSync(path.join(dir, 'marked', STACK_MARKER), '')
    fs.writeFileSync(path.join(dir, 'marked', 'notes.txt'), '')
    expect(check(dir, 'marked')).not.toThrow()
    fs.mkdirSync(path.join(dir, 'older'))
    for (const f of ['docker-compose.yml', 'docker-compose.override.yml', '.env', 'secrets.sha256.json'])
      fs.writeFileSync(path.join(dir, 'older', f), '')
    fs.mkdirSync(path.join(dir, 'older', 'posthog'))
    expect(check(dir, 'older')).not.toThrow()
  })
  it('expands a leading ~ to the home folder instead of making a folder named ~', () => {
    expect(resolveStackDir('/p', '~/posthog-stack')).toBe(path.join(os.homedir(), 'posthog-stack'))
    expect(resolveStackDir('/p', '~')).toBe(os.homedir())
    expect(resolveStackDir('/p', 'a/~b')).toBe('/p/a/~b')
  })
  it('is checked when the configuration is planned, before anything is written', () => {
    const dir = project(`POSTHOG_SECRET=\nSTACK_DIR=.\n`)
    expect(() => planEnvFile({ root: dir, env: {} })).toThrow(
      /STACK_DIR=\. .*is or contains the project folder/,
    )
    expect(read(dir)).toBe('POSTHOG_SECRET=\nSTACK_DIR=.\n')
  })
})
