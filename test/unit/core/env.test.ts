import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { redact, UsageError } from '../../../lib/core/cli.mts'
import {
  envErrors,
  isGitRefName,
  isHostname,
  loadConfig,
  mergeEnv,
  parseEnvText,
  urlCredential,
} from '../../../lib/core/env.mts'
import { ensureEnvFile, formatEnvValue, setEnvValue } from '../../../lib/core/env-file.mts'
import { assertSecretsUnchanged, recordSecretFingerprints } from '../../../lib/core/secrets.mts'
import { scratchDir } from '../../helpers/common.ts'

const example = fs.readFileSync(path.resolve(process.cwd(), '.env.example'), 'utf8')

function scratch(): string {
  const dir = scratchDir('env-test-')
  fs.writeFileSync(path.join(dir, '.env.example'), example)
  return dir
}

describe('validation', () => {
  it('accepts the defaults with real secrets', () => {
    const raw = mergeEnv({ POSTHOG_SECRET: 'a'.repeat(56), ENCRYPTION_SALT_KEYS: 'b'.repeat(32) }, {})
    expect(envErrors(raw)).toEqual([])
  })
  it.each([
    ['DOMAIN', 'not a host!'],
    ['DOMAIN', '-bad.example.com'],
    ['POSTHOG_PROXY_HTTP_PORT', '0'],
    ['POSTHOG_PROXY_HTTP_PORT', '65536'],
    ['ENCRYPTION_SALT_KEYS', 'short'],
    ['ENCRYPTION_SALT_KEYS', `${'a'.repeat(31)}!`],
    ['POSTHOG_SECRET', 'x'.repeat(49)],
    ['POSTHOG_APP_TAG', '--upload-pack=evil'],
    ['POSTHOG_APP_TAG', 'a..b'],
    ['DISABLED_SERVICES', 'web,,worker'],
    ['MEMORY_LIMITS', 'clickhouse=lots'],
    ['HEALTH_TIMEOUT', 'soon'],
    ['HEALTH_TIMEOUT', '600h'],
  ])('rejects %s=%s naming the key', (key, value) => {
    const raw = mergeEnv(
      { POSTHOG_SECRET: 'a'.repeat(56), ENCRYPTION_SALT_KEYS: 'b'.repeat(32), [key]: value },
      {},
    )
    const errors = envErrors(raw)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(new RegExp(`^${key} `))
  })
  it('says how long a duration may be at most (a Node timer overflows past 2^31-1 ms)', () => {
    const raw = mergeEnv({ POSTHOG_SECRET: 'a'.repeat(56), ENCRYPTION_SALT_KEYS: 'b'.repeat(32) }, {})
    expect(envErrors({ ...raw, HEALTH_TIMEOUT: '600h' })).toEqual([
      'HEALTH_TIMEOUT is longer than a timer can wait: at most 596h (24 days)',
    ])
  })
  it('knows hostnames and git refs', () => {
    expect(isHostname('ph.example.com')).toBe(true)
    expect(isHostname('localhost')).toBe(true)
    expect(isHostname('example')).toBe(false)
    expect(isGitRefName('release-1.43.0')).toBe(true)
    expect(isGitRefName('0123456789abcdef0123456789abcdef01234567')).toBe(true)
    expect(isGitRefName('-x')).toBe(false)
    expect(isGitRefName('a b')).toBe(false)
  })
})

describe('ensureEnvFile', () => {
  it('creates .env from the example with generated secrets, mode 0600, every line kept', () => {
    const dir = scratch()
    const res = ensureEnvFile({ root: dir, env: {} })
    expect(res).toEqual({ created: true, generated: ['POSTHOG_SECRET', 'ENCRYPTION_SALT_KEYS'] })
    const text = fs.readFileSync(path.join(dir, '.env'), 'utf8')
    expect(fs.statSync(path.join(dir, '.env')).mode & 0o777).toBe(0o600)
    expect(text).toMatch(/^POSTHOG_SECRET=[0-9a-f]{56}$/m)
    expect(text).toMatch(/^ENCRYPTION_SALT_KEYS=[0-9a-f]{32}$/m)
    const strip = (t: string) =>
      t.split('\n').filter((l) => !/^(POSTHOG_SECRET|ENCRYPTION_SALT_KEYS)=/.test(l))
    expect(strip(text)).toEqual(strip(example))
  })
  it('never replaces a real secret and keeps comments and order', () => {
    const dir = scratch()
    const mine = `# mine\nDOMAIN=ph.example.com\nPOSTHOG_SECRET=${'s'.repeat(60)}\n# keep me\nENCRYPTION_SALT_KEYS=\nEXTRA=1\n`
    fs.writeFileSync(path.join(dir, '.env'), mine, { mode: 0o644 })
    const res = ensureEnvFile({ root: dir, env: {} })
    expect(res.generated).toEqual(['ENCRYPTION_SALT_KEYS'])
    const text = fs.readFileSync(path.join(dir, '.env'), 'utf8')
    expect(text).toContain(`POSTHOG_SECRET=${'s'.repeat(60)}\n# keep me\nENCRYPTION_SALT_KEYS=`)
    expect(text.startsWith('# mine\nDOMAIN=ph.example.com\n')).toBe(true)
    expect(text.endsWith('EXTRA=1\n')).toBe(true)
    expect(fs.statSync(path.join(dir, '.env')).mode & 0o777).toBe(0o600)
    const again = ensureEnvFile({ root: dir, env: {} })
    expect(again.generated).toEqual([])
    expect(fs.readFileSync(path.join(dir, '.env'), 'utf8')).toBe(text)
  })
  it('changes nothing when another key is invalid', () => {
    const dir = scratch()
    fs.writeFileSync(path.join(dir, '.env'), 'DOMAIN=bad domain\nPOSTHOG_SECRET=\n')
    expect(() => ensureEnvFile({ root: dir, env: {} })).toThrow(UsageError)
    expect(fs.readFileSync(path.join(dir, '.env'), 'utf8')).toBe('DOMAIN=bad domain\nPOSTHOG_SECRET=\n')
  })
  it('setEnvValue edits in place or appends', () => {
    expect(setEnvValue('A=1\nB=2\n', 'A', 'x')).toBe('A=x\nB=2\n')
    expect(setEnvValue('export A=1\n', 'A', 'x y')).toBe("export A='x y'\n")
    expect(setEnvValue('A=1', 'C', '3')).toBe('A=1\nC=3\n')
  })
  it('setEnvValue replaces the whole of a value that spans lines, and keeps a trailing comment', () => {
    const text = "A='line 1\nline 2'\nB=2\nC=old   # keep me\n"
    expect(setEnvValue(text, 'A', 'x')).toBe('A=x\nB=2\nC=old   # keep me\n')
    expect(setEnvValue(text, 'C', 'new')).toBe("A='line 1\nline 2'\nB=2\nC=new   # keep me\n")
    expect(parseEnvText(setEnvValue(text, 'C', 'new'))).toEqual({ A: 'line 1\nline 2', B: '2', C: 'new' })
  })
  it('setEnvValue edits the line dotenv reads when a key is set twice', () => {
    const text = '# A=0\nA=1\nB=2\nA=3\n'
    const edited = setEnvValue(text, 'A', 'x')
    expect(edited).toBe('# A=0\nA=1\nB=2\nA=x\n')
    expect(parseEnvText(edited).A).toBe('x')
  })
  it('never overwrites a real secret shadowed by a later empty line', () => {
    const dir = scratch()
    const real = 'r'.repeat(56)
    fs.writeFileSync(path.join(dir, '.env'), `POSTHOG_SECRET=${real}\nPOSTHOG_SECRET=\n`)
    ensureEnvFile({ root: dir, env: {} })
    const text = fs.readFileSync(path.join(dir, '.env'), 'utf8')
    expect(text.startsWith(`POSTHOG_SECRET=${real}\n`)).toBe(true)
    expect(parseEnvText(text).POSTHOG_SECRET).toMatch(/^[0-9a-f]{56}$/)
  })
})

describe('credentials in POSTHOG_REPO_URL', () => {
  it('finds the password, or a token given as the user name, of an http(s) URL only', () => {
    expect(urlCredential('https://me:ghp_secret123@github.com/me/posthog.git')).toBe('ghp_secret123')
    expect(urlCredential('https://ghp_secret123@github.com/me/posthog.git')).toBe('ghp_secret123')
    expect(urlCredential('https://github.com/PostHog/posthog.git')).toBeUndefined()
    expect(urlCredential('ssh://git@github.com/PostHog/posthog.git')).toBeUndefined()
  })
  it('is masked in everything printed once the configuration is loaded', () => {
    const dir = scratch()
    ensureEnvFile({ root: dir, env: {} })
    fs.appendFileSync(
      path.join(dir, '.env'),
      'POSTHOG_REPO_URL=https://me:ghp_repotoken42@example.com/posthog.git\n',
    )
    loadConfig({ root: dir, env: {} })
    // The registered credential, and then the whole userinfo as anything in a URL's userinfo is.
    expect(redact('from https://me:ghp_repotoken42@example.com/posthog.git')).toBe(
      'from https://***@example.com/posthog.git',
    )
  })
})

describe('secret guard', () => {
  it('names a damaged fingerprint file and what to do about it', () => {
    const dir = scratch()
    ensureEnvFile({ root: dir, env: {} })
    const cfg = loadConfig({ root: dir, env: {} })
    recordSecretFingerprints(cfg)
    fs.writeFileSync(path.join(cfg.stackDir, 'secrets.sha256.json'), '{"POSTHOG_SECRET": ')
    expect(() => assertSecretsUnchanged(cfg, false)).toThrow(
      expect.objectContaining({
        exitCode: 1,
        message: expect.stringMatching(/secrets\.sha256\.json .*is not valid JSON/),
        fix: expect.stringMatching(/delete it/),
      }),
    )
    expect(() => assertSecretsUnchanged(cfg, true)).not.toThrow()
  })
  it('refuses changed secrets unless accepted', () => {
    const dir = scratch()
    ensureEnvFile({ root: dir, env: {} })
    const cfg = loadConfig({ root: dir, env: {} })
    recordSecretFingerprints(cfg)
    expect(() => assertSecretsUnchanged(cfg, false)).not.toThrow()
    const changed = { ...cfg, raw: { ...cfg.raw, POSTHOG_SECRET: 'z'.repeat(56) } }
    expect(() => assertSecretsUnchanged(changed, false)).toThrow(/POSTHOG_SECRET differ/)
    expect(() => assertSecretsUnchanged(changed, true)).not.toThrow()
  })
})

describe('.env values round-trip through dotenv exactly', () => {
  it('the values that used to come back changed', () => {
    for (const value of [
      `it's "x"`,
      'a\\b',
      'C:\\new\\dir',
      'ends with \\',
      "'quoted'",
      'x\ny',
      ' padded ',
      '#not a comment',
    ])
      expect(parseEnvText(`K=${formatEnvValue(value)}\n`).K).toBe(value)
    expect(formatEnvValue(`it's "x"`)).toBe('`it\'s "x"`')
  })

  // A seeded generator (no dependency): every value either reads back exactly where it is
  // written, between other assignments, or is refused as bad input; nothing else is touched.
  function random(seed: number) {
    let x = seed
    return () => {
      x = (x * 1103515245 + 12345) % 2 ** 31
      return x / 2 ** 31
    }
  }
  const ALPHABET = [
    'a',
    'Z',
    '0',
    ' ',
    '\t',
    '\n',
    '\r',
    '#',
    '$',
    '=',
    "'",
    '"',
    '`',
    '\\',
    'n',
    'r',
    ':',
    'é',
  ]

  it('for thousands of values made of the characters dotenv treats specially', () => {
    const rnd = random(42)
    let refused = 0
    for (let i = 0; i < 5000; i++) {
      const length = Math.floor(rnd() * 12)
      const value = Array.from({ length }, () => ALPHABET[Math.floor(rnd() * ALPHABET.length)]).join('')
      const before = "A=1\nQ='quoted # not a comment'\nK=old\n"
      const after = 'B="two"\nC=`three`\n'
      let text: string
      try {
        text = setEnvValue(before + after, 'K', value)
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError)
        // Only what dotenv cannot read back for sure: a carriage return (possible in double quotes
        // only) beside a bare ", a backslash before the closing quote (it would escape it), or '
        // and ` together with what rules out double quotes.
        const unwritable =
          value.includes('\r') || value.endsWith('\\') || (value.includes("'") && value.includes('`'))
        expect(unwritable, JSON.stringify(value)).toBe(true)
        refused++
        continue
      }
      expect(parseEnvText(text), JSON.stringify(value)).toEqual({
        A: '1',
        Q: 'quoted # not a comment',
        K: value,
        B: 'two',
        C: 'three',
      })
      // Set again on the result: still exact, and the text does not grow.
      expect(setEnvValue(text, 'K', value)).toBe(text)
    }
    expect(refused).toBeLessThan(1000)
  })
})

describe('reading .env', () => {
  it('a .env that is a directory or cannot be read is bad input in one line', () => {
    const dir = scratch()
    fs.mkdirSync(path.join(dir, '.env'))
    expect(() => loadConfig({ root: dir, env: {} })).toThrow(UsageError)
    expect(() => loadConfig({ root: dir, env: {} })).toThrow(
      /\.env is a directory, not a file: point --env-file/,
    )
    expect(() => ensureEnvFile({ root: dir, env: {} })).toThrow(/is a directory/)
    if (process.getuid?.() !== 0) {
      const other = scratch()
      fs.writeFileSync(path.join(other, '.env'), 'DOMAIN=localhost\n', { mode: 0o000 })
      expect(() => loadConfig({ root: other, env: {} })).toThrow(/cannot be read by this user \(EACCES\)/)
    }
  })
})
