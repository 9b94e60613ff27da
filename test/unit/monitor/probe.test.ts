import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  certCheck,
  checkHealthUrl,
  checkHttpUrl,
  healthCheckFromProbe,
  probe,
  readCaFile,
} from '../../../lib/monitor/probe.mts'
import { freePort, type Listening, listenLocal, scratchDir } from '../../helpers/common.ts'

const servers: Listening[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

async function serve(handler: http.RequestListener): Promise<string> {
  const server = await listenLocal(http.createServer(handler))
  servers.push(server)
  return `http://127.0.0.1:${server.port}/_health`
}

describe('the /_health probe', () => {
  it('reads the status and the body of an answer', async () => {
    const url = await serve((_req, res) => res.writeHead(503).end('Migrations are not up to date\n'))
    expect(await probe(url, { timeoutMs: 3000 })).toEqual({
      kind: 'http',
      status: 503,
      body: 'Migrations are not up to date\n',
    })
  })

  it('says when nothing listens, and when the answer does not come in time', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/_health`
    expect(await probe(closed, { timeoutMs: 3000 })).toEqual({ kind: 'refused', detail: 'ECONNREFUSED' })
    const hung = await serve(() => {})
    const r = await probe(hung, { timeoutMs: 300 })
    expect(r).toEqual({ kind: 'timeout', afterMs: 300 })
    expect(healthCheckFromProbe('local', hung, r)).toEqual({
      name: 'local',
      status: 'CRITICAL',
      summary: `${hung}: no answer within 0.3 s`,
    })
  })

  it('checks no certificate for a plain http URL', async () => {
    const url = await serve((_req, res) => res.writeHead(200).end('ok'))
    expect(await checkHealthUrl('local', url, { timeoutMs: 3000 })).toEqual([
      { name: 'local', status: 'OK', summary: `${url} answers ok` },
    ])
  })

  it('words what went wrong without an answer', () => {
    const summary = (r: Parameters<typeof healthCheckFromProbe>[2]) =>
      healthCheckFromProbe('public', 'u', r).summary
    expect(summary({ kind: 'refused', detail: 'ECONNRESET' })).toBe('u: connection reset')
    expect(summary({ kind: 'error', detail: 'certificate has expired' })).toBe('u: certificate has expired')
    expect(summary({ kind: 'http', status: 502, body: '' })).toBe('u answers 502')
  })
})

describe('flag values the probe takes', () => {
  it('reads a PEM --ca-file, and refuses one that is missing or holds no certificate', () => {
    const dir = scratchDir('ca-file-')
    const pem = path.join(dir, 'ca.pem')
    fs.writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    expect(readCaFile(pem)).toContain('BEGIN CERTIFICATE')
    expect(readCaFile(undefined)).toBeUndefined()
    expect(() => readCaFile(path.join(dir, 'missing.pem'))).toThrow(/cannot be read \(ENOENT\)/)
    const text = path.join(dir, 'text.pem')
    fs.writeFileSync(text, 'hello\n')
    expect(() => readCaFile(text)).toThrow(/holds no PEM certificate/)
  })

  it('takes http(s) URLs only', () => {
    expect(() => checkHttpUrl('http://127.0.0.1:18000/_health', '--local-url')).not.toThrow()
    expect(() => checkHttpUrl(undefined, '--local-url')).not.toThrow()
    for (const bad of ['127.0.0.1:18000/_health', 'not a url', 'ftp://x/_health'])
      expect(() => checkHttpUrl(bad, '--public-url')).toThrow(UsageError)
  })
})

describe('the /_health check', () => {
  it('reads /_health answers', () => {
    expect(healthCheckFromProbe('local', 'u', { kind: 'http', status: 200, body: 'ok' }).status).toBe('OK')
    const migrating = healthCheckFromProbe('local', 'u', {
      kind: 'http',
      status: 503,
      body: 'Migrations are not up to date',
    })
    expect(migrating).toMatchObject({
      status: 'CRITICAL',
      summary: 'u answers 503 Migrations are not up to date',
    })
    expect(healthCheckFromProbe('local', 'u', { kind: 'refused', detail: 'ECONNREFUSED' }).summary).toBe(
      'u: connection refused',
    )
  })
})

describe('certificate days', () => {
  const now = new Date('2026-11-25T12:00:00Z')
  const inDays = (d: number) => new Date(now.getTime() + d * 86_400_000)
  it.each([
    [30, 'OK'],
    [14.5, 'OK'],
    [13.9, 'WARNING'],
    [3.1, 'WARNING'],
    [2.9, 'CRITICAL'],
    [0.2, 'CRITICAL'],
  ])('%d days left is %s', (days, status) => {
    expect(certCheck('certificate', inDays(days), now).status).toBe(status)
  })
})
