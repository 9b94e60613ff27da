import path from 'node:path'
import { parse } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { frpFolderFlags } from '../../../lib/tunnel/frp-flags.mts'
import { frpsConfigText, frpsFiles, frpsSettings } from '../../../lib/tunnel/frps-settings.mts'

const given = {
  domain: 'PH.example.com',
  remotePort: '12080',
  bindPort: '7000',
  bindAddr: '0.0.0.0',
  version: '0.70.1',
  baseUrl: 'https://github.com/fatedier/frp/releases/download',
  installDir: '/usr/local/bin',
  configDir: 'etc/frp',
  logDir: '/var/log/frp',
  systemdDir: '/etc/systemd/system',
  manager: 'none',
  user: 'frps',
}

describe('frpsSettings', () => {
  it('checks and converts what was given: lower-case domain, numeric ports, absolute folders', () => {
    expect(frpsSettings(given)).toEqual({
      ...given,
      domain: 'ph.example.com',
      remotePort: 12080,
      bindPort: 7000,
      configDir: path.resolve('etc/frp'),
    })
  })

  it.each([
    [{ domain: undefined }, /no domain/],
    [{ version: '0.63.0' }, /--frp-version 0\.63\.0/],
    [{ bindAddr: '0.0.0.0; rm' }, /--bind-addr .* is not an IP address/],
    [{ baseUrl: 'ftp://example.com' }, /--release-base-url .* is not an http\(s\) URL/],
    [{ user: 'Root User' }, /--user Root User is not a valid user name/],
    [{ remotePort: '70000' }, /--remote-port 70000 is not a port/],
    [{ bindPort: 'x' }, /--bind-port x is not a port/],
    [{ manager: 'launchd' }, /the VPS side runs on Linux/],
    [{ manager: 'upstart' }, /is not one of auto, systemd, launchd, none/],
  ])('refuses %j', (over, message) => {
    expect(() => frpsSettings({ ...given, ...over })).toThrow(UsageError)
    expect(() => frpsSettings({ ...given, ...over })).toThrow(message)
  })
})

describe('the files frps-setup writes', () => {
  const s = frpsSettings({ ...given, configDir: '/etc/frp' })

  it('keep the token, TLS files and config in the config dir, the log in the log dir', () => {
    expect(frpsFiles(s)).toEqual({
      tokenFile: '/etc/frp/frps.token',
      tlsDir: '/etc/frp/tls',
      configFile: '/etc/frp/frps.toml',
      logFile: '/var/log/frp/frps.log',
      unitFile: '/etc/systemd/system/frps.service',
    })
  })

  it('frps.toml reads the token from its file and serves TLS with the tunnel identity', () => {
    expect(parse(frpsConfigText(s))).toMatchObject({
      bindAddr: '0.0.0.0',
      bindPort: 7000,
      auth: { tokenSource: { type: 'file', file: { path: '/etc/frp/frps.token' } } },
      transport: {
        tls: { force: true, certFile: '/etc/frp/tls/server.crt', keyFile: '/etc/frp/tls/server.key' },
      },
      allowPorts: [{ single: 12080 }],
      log: { to: '/var/log/frp/frps.log' },
    })
  })
})

describe('frpFolderFlags', () => {
  it('gives both setup steps the same variables, with their own defaults', () => {
    const frps = frpFolderFlags('frps', { configDir: '/etc/frp', configHelp: 'x', logDir: '/var/log/frp' })
    expect(frps['install-dir']).toMatchObject({
      env: 'FRP_INSTALL_DIR',
      default: '/usr/local/bin',
      path: true,
    })
    expect(frps['config-dir']).toMatchObject({ env: 'FRP_CONFIG_DIR', default: '/etc/frp', path: true })
    expect(frps['log-dir']).toMatchObject({ env: 'FRP_LOG_DIR', default: '/var/log/frp', path: true })
    expect(frps['systemd-dir'].help).toBe('where frps.service goes (Linux)')
  })
})
