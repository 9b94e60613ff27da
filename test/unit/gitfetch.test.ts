import { describe, expect, it } from 'vitest'
import { UsageError } from '../../lib/cli.mts'
import { classifyGitError, fetchModeFor, refspecFor, sparsePatterns } from '../../lib/gitfetch.mts'
import { DELIM, FLUSH, parsePkts, pktLine } from '../../lib/gitwire.mts'

describe('refs and patterns', () => {
  it('maps latest to the remote HEAD and refuses option-like refs', () => {
    expect(refspecFor('latest')).toBe('HEAD')
    expect(refspecFor('v1.2.3')).toBe('v1.2.3')
    expect(refspecFor('a'.repeat(40))).toBe('a'.repeat(40))
    expect(() => refspecFor('--upload-pack=touch /tmp/x')).toThrow(UsageError)
    expect(() => refspecFor('a..b')).toThrow(UsageError)
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
    ['fatal: the server says: upload-pack: not our ref 1234', 'missing-ref'],
    ["fatal: repository 'http://x/y.git/' not found", 'missing-repo'],
    ["fatal: unable to access 'http://127.0.0.1:1/x/': Failed to connect to 127.0.0.1 port 1", 'network'],
    ['error: RPC failed; HTTP 503 curl 22', 'network'],
    ['fatal: early EOF', 'network'],
    ['error: Your local changes to the following files would be overwritten by checkout', 'other'],
  ])('%s → %s', (stderr, kind) => {
    expect(classifyGitError(stderr)).toBe(kind)
  })
})

describe('fetchModeFor', () => {
  it('fetches http(s) remotes precisely, everything else the stock-git way', () => {
    expect(fetchModeFor('https://github.com/PostHog/posthog.git', {})).toBe('precise')
    expect(fetchModeFor('http://127.0.0.1:8080/posthog.git', {})).toBe('precise')
    expect(fetchModeFor('git@github.com:PostHog/posthog.git', {})).toBe('sparse')
    expect(fetchModeFor('file:///srv/posthog.git', {})).toBe('sparse')
    expect(fetchModeFor('https://user:token@example.com/p.git', {})).toBe('sparse')
  })
  it('leaves proxied networks to git, which honours the proxy settings', () => {
    expect(fetchModeFor('https://github.com/PostHog/posthog.git', { HTTPS_PROXY: 'http://proxy:3128' })).toBe(
      'sparse',
    )
  })
  it('can be forced either way', () => {
    expect(fetchModeFor('https://github.com/x.git', { HOMELAB_FETCH_MODE: 'sparse' })).toBe('sparse')
    expect(fetchModeFor('file:///x.git', { HOMELAB_FETCH_MODE: 'precise' })).toBe('precise')
  })
})

describe('pkt-lines', () => {
  it('encodes and parses data, flush, delim and response-end packets', () => {
    const buf = Buffer.concat([
      pktLine('command=fetch\n'),
      DELIM,
      pktLine('want abc\n'),
      FLUSH,
      Buffer.from('0002'),
    ])
    expect(buf.subarray(0, 4).toString()).toBe('0012')
    const pkts = parsePkts(buf)
    expect(pkts.map((p) => p.kind)).toEqual(['data', 'delim', 'data', 'flush', 'end'])
    expect(pkts[0]?.kind === 'data' && pkts[0].data.toString()).toBe('command=fetch\n')
  })
  it('refuses truncated or malformed input', () => {
    expect(() => parsePkts(Buffer.from('00ffabc'))).toThrow(/truncated/)
    expect(() => parsePkts(Buffer.from('zzzz'))).toThrow(/malformed/)
  })
})
