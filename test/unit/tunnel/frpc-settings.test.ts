import fs from 'node:fs'
import path from 'node:path'
import { parse } from 'smol-toml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { FRPC_LAUNCHD_LABEL } from '../../../lib/tunnel/frp-service.mts'
import {
  frpcConfigText,
  frpcService,
  frpsCa,
  frpsEndpoint,
  pinnedCaFile,
} from '../../../lib/tunnel/frpc-settings.mts'
import { scratchDir } from '../../helpers/common.ts'

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
let dir: string
beforeAll(() => {
  dir = scratchDir('frpc-settings-')
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('the frps CA', () => {
  it('is none until one is given, then the pinned copy is kept on later runs', () => {
    const configDir = path.join(dir, 'etc')
    expect(frpsCa(undefined, configDir)).toBeUndefined()
    const given = path.join(dir, 'ca.crt')
    fs.writeFileSync(given, PEM)
    expect(frpsCa(given, configDir)).toEqual({ text: PEM, file: pinnedCaFile(configDir), kept: false })
    fs.mkdirSync(configDir)
    fs.writeFileSync(pinnedCaFile(configDir), PEM)
    expect(frpsCa(undefined, configDir)).toEqual({
      text: PEM,
      file: path.join(configDir, 'frps-ca.crt'),
      kept: true,
    })
  })

  it('refuses a file that cannot be read or is not a certificate', () => {
    expect(() => frpsCa(path.join(dir, 'missing.crt'), dir)).toThrow(
      /cannot be read: copy ca.crt from the VPS/,
    )
    const notPem = path.join(dir, 'not.crt')
    fs.writeFileSync(notPem, 'hello')
    expect(() => frpsCa(notPem, dir)).toThrow(/is not a PEM certificate/)
  })
})

describe('frpsEndpoint', () => {
  const env = { FRP_SERVER_ADDR: '203.0.113.7', DOMAIN: 'ph.example.com' }
  const none = { serverAddr: undefined, serverName: undefined }

  it('comes from .env unless the flags say otherwise', () => {
    expect(frpsEndpoint(none, env, '.env', true)).toEqual({
      serverAddr: '203.0.113.7',
      serverName: 'ph.example.com',
    })
    expect(
      frpsEndpoint({ serverAddr: 'vps.example.com', serverName: 'x.example.com' }, env, '.env', true),
    ).toEqual({
      serverAddr: 'vps.example.com',
      serverName: 'x.example.com',
    })
  })

  it.each([
    ['no VPS address', none, {}, false, /FRP_SERVER_ADDR is empty: set it in \.env/],
    [
      'an address with a space',
      { ...none, serverAddr: 'a b' },
      env,
      false,
      /is not an IP address or hostname/,
    ],
    [
      'a CA without the name on it',
      none,
      { FRP_SERVER_ADDR: '203.0.113.7' },
      true,
      /--frps-ca needs the name/,
    ],
    ['a CA with localhost', { ...none, serverName: 'localhost' }, env, true, /--frps-ca needs the name/],
  ])('refuses %s', (_what, given, e, pinning, message) => {
    expect(() => frpsEndpoint(given, e, '.env', pinning)).toThrow(UsageError)
    expect(() => frpsEndpoint(given, e, '.env', pinning)).toThrow(message)
  })
})

describe('frpc.toml', () => {
  const env = {
    FRP_SERVER_PORT: '7000',
    FRP_TOKEN: 'feedface'.repeat(5),
    POSTHOG_PROXY_HTTP_PORT: '8000',
    FRP_REMOTE_PORT: '12080',
  }
  const endpoint = { serverAddr: '203.0.113.7', serverName: 'ph.example.com' }

  it('forwards PostHog into the VPS loopback port, pinning the VPS when there is a CA', () => {
    const ca = { text: PEM, file: '/etc/frp/frps-ca.crt', kept: false }
    expect(parse(frpcConfigText(env, endpoint, '/var/log/frp', ca))).toMatchObject({
      serverAddr: '203.0.113.7',
      serverPort: 7000,
      transport: {
        tls: { enable: true, trustedCaFile: '/etc/frp/frps-ca.crt', serverName: 'ph.example.com' },
      },
      proxies: [{ localPort: 8000, remotePort: 12080 }],
      log: { to: '/var/log/frp/frpc.log' },
    })
    expect(parse(frpcConfigText(env, endpoint, '/var/log/frp', undefined))).toMatchObject({
      transport: { tls: { enable: true } },
    })
    expect(frpcConfigText(env, endpoint, '/var/log/frp', undefined)).not.toContain('trustedCaFile')
  })
})

describe('frpcService', () => {
  const folders = {
    systemdDir: '/etc/systemd/system',
    launchdDir: '/Library/LaunchDaemons',
    logDir: '/var/log/frp',
  }
  const files = { binPath: '/usr/local/bin/frpc', configFile: '/etc/frp/frpc.toml' }

  it('is a systemd unit on Linux, also when only printed', () => {
    for (const manager of ['systemd', 'none'] as const) {
      const service = frpcService(manager, 'linux', folders, files)
      expect(service).toMatchObject({
        manager,
        kind: 'systemd',
        name: 'frpc.service',
        file: '/etc/systemd/system/frpc.service',
      })
      expect(service.content).toContain('ExecStart=/usr/local/bin/frpc -c /etc/frp/frpc.toml')
    }
  })

  it('is a LaunchDaemon with launchd, and on macOS when only printed', () => {
    const plist = path.join('/Library/LaunchDaemons', `${FRPC_LAUNCHD_LABEL}.plist`)
    expect(frpcService('launchd', 'darwin', folders, files)).toMatchObject({ kind: 'launchd', file: plist })
    const printed = frpcService('none', 'darwin', folders, files)
    expect(printed).toMatchObject({ kind: 'launchd', name: FRPC_LAUNCHD_LABEL, file: plist })
    expect(printed.content).toContain('<string>/usr/local/bin/frpc</string>')
  })
})
