// The shared test scaffolding checks itself: a secret check that missed a leak, or a runner that
// hung past its timeout, would weaken every black-box test that relies on them.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { isHealthy, isPastMigrations } from '../../lib/core/health.mts'
import { probeRoutes } from '../../lib/stack/routes.mts'
import {
  dockerCalls,
  expectNoSecrets,
  runProcess,
  scratchDir,
  secretsFound,
  withoutComposeGlobals,
  writeEnvFile,
} from '../helpers/common.ts'
import { healthServer, makeProject, usualStart } from '../helpers/stack-env.ts'

describe('the no-secret check', () => {
  it('finds a secret on either stream and passes clean output', () => {
    const secrets = ['s3cr3t-value', 'other-key']
    expect(secretsFound({ stdout: 'ok', stderr: 'boom s3cr3t-value' }, secrets)).toEqual(['s3cr3t-value'])
    expect(secretsFound('other-key in a log', secrets)).toEqual(['other-key'])
    expect(() => expectNoSecrets({ stdout: 'x other-key', stderr: '' }, secrets)).toThrow()
    expect(() => expectNoSecrets({ stdout: 'fine', stderr: 'fine' }, secrets)).not.toThrow()
  })

  it('refuses an empty secret, which would match any output', () => {
    expect(() => secretsFound('anything', [''])).toThrow(/empty secret/)
  })
})

describe('runProcess', () => {
  it('collects both streams, in order too, with the exit code and stdin', async () => {
    const r = await runProcess(
      process.execPath,
      ['-e', 'process.stdout.write("a");process.stderr.write("b");process.stdin.pipe(process.stdout)'],
      { input: 'c', timeoutMs: 10_000 },
    )
    expect(r).toMatchObject({ code: 0, stdout: 'ac', stderr: 'b' })
    expect(r.output.split('').sort().join('')).toBe('abc')
  })

  it('kills a process that outlives its timeout', async () => {
    const r = await runProcess(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { timeoutMs: 300 })
    expect(r.code).toBeNull() // ended by SIGKILL, not by itself
  })
})

describe('fake docker call log', () => {
  it('drops compose globals and keeps other calls as they are', () => {
    expect(
      withoutComposeGlobals([
        'compose',
        '-f',
        'a.yml',
        '-p',
        'posthog',
        '--env-file',
        'e',
        'up',
        '-d',
        'web',
      ]),
    ).toEqual(['compose', 'up', '-d', 'web'])
    expect(withoutComposeGlobals(['inspect', '-f', 'x'])).toEqual(['inspect', '-f', 'x'])
    const dir = scratchDir('helpers-unit-')
    const log = path.join(dir, 'calls.jsonl')
    expect(dockerCalls(log)).toEqual([])
    fs.writeFileSync(log, `${JSON.stringify({ argv: ['compose', '-f', 'x', 'ps'] })}\n`)
    expect(dockerCalls(log)).toEqual([['compose', 'ps']])
  })
})

it('writes .env files with mode 0600', () => {
  const file = path.join(scratchDir('helpers-unit-'), '.env')
  writeEnvFile(file, { A: '1', B: 'two' }, 'test')
  expect(fs.readFileSync(file, 'utf8')).toBe('# test\nA=1\nB=two\n')
  expect(fs.statSync(file).mode & 0o777).toBe(0o600)
})

describe('the /_health stand-in of an ordered start (usualStart)', () => {
  const at = (webStarted: boolean, allStarted: boolean, sinceWeb: number) => {
    const a = usualStart({ webStarted, allStarted, sinceWeb })
    return { kind: 'http' as const, status: a.status, body: a.body }
  }
  it('tells apart web past its migrations from a healthy stack', () => {
    expect(isPastMigrations(at(false, false, 0))).toBe(false) // 502
    expect(isPastMigrations(at(true, false, 1))).toBe(false) // 503 migrating
    expect(isPastMigrations(at(true, false, 5))).toBe(true)
    expect(isHealthy(at(true, false, 5))).toBe(false) // web alone: not healthy yet
    expect(isHealthy(at(true, true, 5))).toBe(true)
  })
})

describe('the proxy stand-in of up’s tests (stack-env healthServer)', () => {
  it('answers the capture path as a healthy stack does, per route as a test sets it', async () => {
    const p = makeProject()
    const server = await healthServer(p, usualStart)
    try {
      const baseUrl = `http://127.0.0.1:${server.port}`
      const enabledServices = ['web', 'capture', 'feature-flags']
      const ok = await probeRoutes({ baseUrl, enabledServices, timeoutMs: 2000 })
      expect(ok.every((r) => r.ok)).toBe(true)
      server.routes['/e/'] = 502
      const dead = await probeRoutes({ baseUrl, enabledServices, timeoutMs: 2000 })
      expect(dead.filter((r) => !r.ok).map((r) => `${r.path} ${r.status}`)).toEqual(['/e/ 502'])
      expect(server.requests).toContain('POST /flags')
      expect(server.firstReadyAt()).toBeUndefined() // route probes are not /_health answers
    } finally {
      await server.close()
      p.cleanup()
    }
  })
})
