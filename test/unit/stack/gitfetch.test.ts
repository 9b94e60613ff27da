import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { gitEnv } from '../../../lib/stack/gitcli.mts'
import {
  classifyGitError,
  isCommitId,
  refspecFor,
  remoteFor,
  sparsePatterns,
} from '../../../lib/stack/gitfetch.mts'

describe('refs and patterns', () => {
  it('maps latest to the remote HEAD and refuses option-like refs', () => {
    expect(refspecFor('latest')).toBe('HEAD')
    expect(refspecFor('v1.2.3')).toBe('v1.2.3')
    expect(refspecFor('a'.repeat(40))).toBe('a'.repeat(40))
    expect(() => refspecFor('--upload-pack=touch /tmp/x')).toThrow(UsageError)
    expect(() => refspecFor('a..b')).toThrow(UsageError)
  })
  it('tells a commit id from a name', () => {
    expect(isCommitId('0123456789abcdef0123456789abcdef01234567')).toBe(true)
    expect(isCommitId('0123456789abcdef')).toBe(false)
    expect(isCommitId('latest')).toBe(false)
  })
  it('anchors sparse patterns and escapes glob characters', () => {
    expect(sparsePatterns(['docker/kafka/topics.txt', 'posthog/idl/', 'b', 'b'])).toEqual([
      '/b',
      '/docker/kafka/topics.txt',
      '/posthog/idl',
    ])
    expect(sparsePatterns(['a/[x]*?.txt', '#b', '!c'])).toEqual(['/\\!c', '/\\#b', '/a/\\[x\\]\\*\\?.txt'])
  })
})

describe('classifyGitError', () => {
  it.each([
    ["fatal: couldn't find remote ref v999", 'missing-ref'],
    ['fatal: remote error: upload-pack: not our ref 1234', 'missing-ref'],
    ["fatal: repository 'http://x/y.git/' not found", 'missing-repo'],
    // Refusals: final, never retried.
    ["fatal: remote error: filter 'blob:none' not supported", 'refused'],
    ['error: Server does not allow request for unadvertised object 6f7f33a1', 'refused'],
    ["fatal: unable to access 'http://x/y.git/': The requested URL returned error: 403", 'denied'],
    ["fatal: Authentication failed for 'https://github.com/me/private.git/'", 'denied'],
    ["fatal: could not read Username for 'https://github.com': terminal prompts disabled", 'denied'],
    ["fatal: unable to access 'http://x/y.git/': The requested URL returned error: 410", 'refused'],
    // Network failures: retried.
    ["fatal: unable to access 'http://127.0.0.1:1/x/': Failed to connect to 127.0.0.1 port 1", 'network'],
    ["fatal: unable to access 'https://github.com/x/': Could not resolve host: github.com", 'network'],
    ["fatal: unable to access 'http://x/y.git/': The requested URL returned error: 503", 'network'],
    ["fatal: unable to access 'http://x/y.git/': The requested URL returned error: 429", 'network'],
    ['error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502', 'network'],
    ["fatal: unable to access 'http://x/': Empty reply from server", 'network'],
    ['fatal: early EOF', 'network'],
    ['error: Your local changes to the following files would be overwritten by checkout', 'other'],
  ])('%s → %s', (stderr, kind) => {
    expect(classifyGitError(stderr)).toBe(kind)
  })
})

describe('credentials in the repository URL', () => {
  const header = (env: Record<string, string>) => env.GIT_CONFIG_VALUE_0
  it('keeps user and password out of the URL git is given and hands them over as a header', () => {
    const r = remoteFor('https://me:ghp_Token123@github.com/me/posthog.git', {})
    expect(r.url).toBe('https://github.com/me/posthog.git')
    expect(r.env).toEqual({
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.https://github.com/.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from('me:ghp_Token123').toString('base64')}`,
    })
  })
  it('decodes percent-escapes, takes a token given as the user name, and keeps the port', () => {
    const r = remoteFor('http://x%40y:p%3Ass@127.0.0.1:8080/r.git', {})
    expect(r.url).toBe('http://127.0.0.1:8080/r.git')
    expect(r.env.GIT_CONFIG_KEY_0).toBe('http.http://127.0.0.1:8080/.extraHeader')
    expect(header(r.env)).toBe(`Authorization: Basic ${Buffer.from('x@y:p:ss').toString('base64')}`)
    expect(header(remoteFor('https://ghp_only@github.com/r.git', {}).env)).toBe(
      `Authorization: Basic ${Buffer.from('ghp_only:').toString('base64')}`,
    )
  })
  it('adds to configuration the environment already passes to git', () => {
    const r = remoteFor('https://u:p@h.example/r.git', { GIT_CONFIG_COUNT: '2' })
    expect(r.env.GIT_CONFIG_COUNT).toBe('3')
    expect(r.env.GIT_CONFIG_KEY_2).toBe('http.https://h.example/.extraHeader')
  })
  it('leaves URLs without a password alone (ssh user names are no secret)', () => {
    for (const url of [
      'https://github.com/PostHog/posthog.git',
      'git@github.com:PostHog/posthog.git',
      'ssh://git@github.com/PostHog/posthog.git',
      'file:///srv/posthog.git',
    ])
      expect(remoteFor(url, {})).toEqual({ url, env: {} })
  })
  it('puts the header in the environment of git, nowhere else', () => {
    const env = gitEnv(remoteFor('https://me:s3cret-token@github.com/me/p.git', {}))
    expect(env.GIT_TERMINAL_PROMPT).toBe('0')
    expect(Object.values(env).join('\n')).toContain('Authorization: Basic')
  })
})
