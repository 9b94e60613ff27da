import fs from 'node:fs'
import path from 'node:path'
import { parse } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import {
  buildFrpcConfig,
  buildFrpsConfig,
  type FrpcOptions,
  type FrpsOptions,
  frpcToml,
  frpsToml,
  tomlKeyPaths,
} from '../../lib/frp.mts'
import { exampleKeys, loadConfig } from '../fakes/frp.mjs'
import { scratchDir } from '../helpers/common.ts'

const fixtures = path.resolve(process.cwd(), '../shared/fixtures/frp')
const fullKeys = (role: string) =>
  exampleKeys(fs.readFileSync(path.join(fixtures, `${role}_full_example.toml`), 'utf8'))

const token = 'b'.repeat(48)
const frpc: FrpcOptions = {
  serverAddr: '203.0.113.7',
  token,
  localPort: 18000,
  remotePort: 12080,
  logFile: '/var/log/frp/frpc.log',
}
const frps: FrpsOptions = {
  remotePort: 12080,
  tokenFile: '/etc/frp/frps.token',
  certFile: '/etc/frp/tls/server.crt',
  keyFile: '/etc/frp/tls/server.key',
  logFile: '/var/log/frp/frps.log',
}

describe('frpc.toml', () => {
  it('has the settings the tunnel needs', () => {
    const c = parse(frpcToml(frpc))
    expect(c).toMatchObject({
      serverAddr: '203.0.113.7',
      serverPort: 7000,
      loginFailExit: false,
      auth: { method: 'token', token },
      transport: { tls: { enable: true } },
      log: { to: '/var/log/frp/frpc.log', disablePrintColor: true },
    })
    expect(c).toHaveProperty('proxies', [
      expect.objectContaining({
        name: 'posthog',
        type: 'tcp',
        localIP: '127.0.0.1',
        localPort: 18000,
        remotePort: 12080,
      }),
    ])
    expect(c).not.toHaveProperty('transport.tls.trustedCaFile')
  })
  it('pins the frps identity with --frps-ca', () => {
    const c = buildFrpcConfig({
      ...frpc,
      trustedCaFile: '/etc/frp/frps-ca.crt',
      serverName: 'ph.example.com',
    })
    expect(c.transport).toEqual({
      tls: { enable: true, trustedCaFile: '/etc/frp/frps-ca.crt', serverName: 'ph.example.com' },
    })
    expect(() => buildFrpcConfig({ ...frpc, trustedCaFile: '/x' })).toThrow(/serverName/)
  })
  it('survives values that would break hand-written TOML', () => {
    const evil = { ...frpc, logFile: '/tmp/a "b"\nserverPort = 1' }
    expect(parse(frpcToml(evil))).toHaveProperty('log.to', evil.logFile)
  })
  it('uses only keys from frpc_full_example.toml', () => {
    const known = fullKeys('frpc')
    const withCa = buildFrpcConfig({ ...frpc, trustedCaFile: '/ca', serverName: 'x.example.com' })
    const unknown = tomlKeyPaths(withCa).filter((k) => !known.has(k))
    expect(unknown).toEqual([])
  })
})

describe('frps.toml', () => {
  it('keeps the tunnel port on loopback, forces TLS and limits ports', () => {
    const text = frpsToml(frps)
    const c = parse(text)
    expect(c).toMatchObject({
      bindAddr: '0.0.0.0',
      bindPort: 7000,
      proxyBindAddr: '127.0.0.1',
      auth: { method: 'token', tokenSource: { type: 'file', file: { path: '/etc/frp/frps.token' } } },
      transport: { tls: { force: true, certFile: frps.certFile, keyFile: frps.keyFile } },
      allowPorts: [{ single: 12080 }],
      log: { to: '/var/log/frp/frps.log', disablePrintColor: true },
    })
    expect(c).not.toHaveProperty('webServer')
    expect(c).not.toHaveProperty('auth.token')
    expect(text).not.toMatch(/^\s*\[common\]/m)
  })
  it('uses only keys from frps_full_example.toml', () => {
    const known = fullKeys('frps')
    expect(tomlKeyPaths(buildFrpsConfig(frps)).filter((k) => !known.has(k))).toEqual([])
  })
})

describe('the frp stand-in (what verify checks)', () => {
  it('knows commented-out keys and array-of-table keys of the full examples', () => {
    const c = fullKeys('frpc')
    expect(c.has('transport.tls.serverName')).toBe(true)
    expect(c.has('proxies[].healthCheck.maxFailed')).toBe(true)
    expect(c.has('proxies[].plugin.type')).toBe(true)
    const s = fullKeys('frps')
    expect(s.has('proxyBindAddr')).toBe(true)
    expect(s.has('auth.tokenSource.file.path')).toBe(true)
    expect(s.has('allowPorts[].single')).toBe(true)
    expect(s.has('bogus')).toBe(false)
  })
  it('rejects unknown keys like frp strict parsing, and accepts the generated files', () => {
    const dir = scratchDir('frp-unit-')
    const good = path.join(dir, 'frps.toml')
    fs.writeFileSync(good, frpsToml(frps))
    expect(loadConfig('frps', good).error).toBeUndefined()
    const bad = path.join(dir, 'bad.toml')
    fs.writeFileSync(bad, `${frpsToml(frps)}\nbindPorts = 7001\n`)
    expect(loadConfig('frps', bad).error).toMatch(/unknown field "bindPorts"/)
    expect(loadConfig('frpc', path.join(dir, 'missing.toml')).error).toMatch(/no such file/)
  })
})
