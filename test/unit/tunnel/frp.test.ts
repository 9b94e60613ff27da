import fs from 'node:fs'
import path from 'node:path'
import { parse } from 'smol-toml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { frpTokenProblem, frpVersionProblem } from '../../../lib/core/env.mts'
import {
  buildFrpcConfig,
  buildFrpsConfig,
  type FrpcOptions,
  type FrpsOptions,
  frpcToml,
  frpsToml,
  tomlKeyPaths,
} from '../../../lib/tunnel/frp.mts'
import { exampleKeys, loadConfig } from '../../fakes/frp.mjs'
import { scratchDir } from '../../helpers/common.ts'
import { needRealFrp, verifyConfig } from '../../helpers/frp.ts'
import { needShared, sharedFile } from '../../helpers/shared.ts'

const haveExamples = needShared(
  'fixtures/frp/frpc_full_example.toml',
  "the key checks against frp's full examples",
)
const haveRealFrp = needRealFrp('the checks with the real `frpc verify` / `frps verify`')
const fullKeys = (role: string) =>
  exampleKeys(fs.readFileSync(sharedFile(`fixtures/frp/${role}_full_example.toml`)!, 'utf8'))

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

let dir: string
beforeAll(() => {
  dir = scratchDir('frp-unit-')
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

function write(name: string, text: string): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
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
  it.runIf(haveExamples)('uses only keys from frpc_full_example.toml', () => {
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
  it.runIf(haveExamples)('uses only keys from frps_full_example.toml', () => {
    const known = fullKeys('frps')
    expect(tomlKeyPaths(buildFrpsConfig(frps)).filter((k) => !known.has(k))).toEqual([])
  })
})

describe("values frp's template engine would break", () => {
  // frp renders every config file with Go's text/template before parsing it
  it('refuses a token with {{ and names the key, not the value', () => {
    const secret = `abc{{${'x'.repeat(40)}`
    expect(() => frpcToml({ ...frpc, token: secret })).toThrow(UsageError)
    expect(() => frpcToml({ ...frpc, token: secret })).toThrow(/^auth\.token for frpc\.toml contains '\{\{'/)
    try {
      frpcToml({ ...frpc, token: secret })
    } catch (e) {
      expect((e as Error).message).not.toContain(secret)
    }
  })
  it('refuses {{ in any other value too (paths come from flags)', () => {
    expect(() => frpcToml({ ...frpc, logFile: '/var/log/{{frp}}/frpc.log' })).toThrow(
      /^log\.to for frpc\.toml/,
    )
    expect(() => frpsToml({ ...frps, tokenFile: '/etc/{{frp/frps.token' })).toThrow(
      /^auth\.tokenSource\.file\.path for frps\.toml/,
    )
    expect(frpcToml({ ...frpc, token: `}}${'y'.repeat(40)}` })).toContain('}}')
  })
  it.runIf(haveRealFrp)('the real frpc rejects a file with {{ and accepts }}', async () => {
    const text = frpcToml(frpc)
    const broken = write('template.toml', text.replace(token, `b{{${token}`))
    expect(await verifyConfig('frpc', broken)).toMatchObject({
      ok: false,
      out: expect.stringMatching(/^template: /),
    })
    const fine = write('closing.toml', text.replace(token, `b}}${token}`))
    expect((await verifyConfig('frpc', fine)).ok).toBe(true)
  })
})

describe('FRP_VERSION and FRP_TOKEN', () => {
  it.each(['0.64.0', '0.70.1', '1.0.0', '0.100.0'])('accepts frp %s', (v) => {
    expect(frpVersionProblem(v)).toBeUndefined()
  })
  it.each([
    ['0.63.9', /0\.64\.0 or later .*auth\.tokenSource/],
    ['0.52.0', /0\.64\.0 or later/],
    ['0.9.99', /0\.64\.0 or later/],
    ['v0.70.1', /a version such as 0\.70\.1/],
    ['0.70', /a version such as 0\.70\.1/],
  ])('refuses frp %s', (v, why) => {
    expect(frpVersionProblem(v)).toMatch(why)
  })
  it('accepts generated tokens and refuses short ones, spaces and {{', () => {
    expect(frpTokenProblem('a1'.repeat(24))).toBeUndefined()
    expect(frpTokenProblem('short')).toMatch(/at least 32/)
    expect(frpTokenProblem(`${'a'.repeat(32)} x`)).toMatch(/without spaces/)
    expect(frpTokenProblem(`${'a'.repeat(32)}{{x`)).toMatch(/'\{\{'.*Go templates/)
  })
})

describe.runIf(haveRealFrp)('the real frp accepts every generated file', () => {
  it.each([
    ['frps', 'frps.toml', () => frpsToml(frps)],
    [
      'frps',
      'frps-custom.toml',
      () => frpsToml({ ...frps, bindAddr: '127.0.0.1', bindPort: 17000, remotePort: 13080 }),
    ],
    ['frpc', 'frpc.toml', () => frpcToml(frpc)],
    [
      'frpc',
      'frpc-ca.toml',
      () => frpcToml({ ...frpc, trustedCaFile: '/etc/frp/frps-ca.crt', serverName: 'ph.example.com' }),
    ],
  ] as const)('%s verify -c %s', async (role, name, text) => {
    const file = write(name, text())
    const r = await verifyConfig(role, file)
    expect(r.out).toBe(`${role}: the configuration file ${file} syntax is ok`)
    expect(r.ok).toBe(true)
  })
  it('and rejects an unknown key, like the stand-in', async () => {
    const file = write('bad.toml', `${frpsToml(frps)}\nbindPorts = 7001\n`)
    expect((await verifyConfig('frps', file)).ok).toBe(false)
  })
})

describe('the frp stand-in (verify where the real frp is missing)', () => {
  it.runIf(haveExamples)('knows commented-out keys and array-of-table keys of the full examples', () => {
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
  it.runIf(haveExamples)('rejects unknown keys like frp strict parsing', () => {
    const bad = write('stand-in-bad.toml', `${frpsToml(frps)}\nbindPorts = 7001\n`)
    expect(loadConfig('frps', bad).error).toMatch(/unknown field "bindPorts"/)
  })
  it('accepts the generated files, and refuses {{, both token kinds and a missing file', () => {
    expect(loadConfig('frps', write('stand-in.toml', frpsToml(frps))).error).toBeUndefined()
    expect(loadConfig('frpc', write('stand-in-c.toml', frpcToml(frpc))).error).toBeUndefined()
    const template = write('stand-in-t.toml', frpcToml(frpc).replace(token, `{{${token}`))
    expect(loadConfig('frpc', template).error).toMatch(/^template: /)
    const both = write('stand-in-both.toml', `auth.token = "x"\nauth.tokenSource.type = "file"\n`)
    expect(loadConfig('frps', both).error).toMatch(/cannot specify both/)
    expect(loadConfig('frpc', path.join(dir, 'missing.toml')).error).toMatch(/no such file/)
  })
})
