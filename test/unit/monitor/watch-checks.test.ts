import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { parseEnvText } from '../../../lib/core/env.mts'
import {
  type WatchFlags,
  watchHome,
  watchSettings,
  watchSettingsText,
} from '../../../lib/monitor/watch-checks.mts'
import { scratchDir } from '../../helpers/common.ts'

const flags = (more: Partial<WatchFlags> = {}): WatchFlags => ({
  services: 'frps,nginx',
  timeout: '20s',
  install: false,
  ...more,
})

function settingsFile(text: string): string {
  const file = path.join(scratchDir('watch-settings-'), 'watch.env')
  fs.writeFileSync(file, text)
  return file
}

describe('watch settings', () => {
  it('checks https://DOMAIN/_health and frps and nginx, with the files in ~/.posthog-watch', () => {
    const home = process.env.HOME
    process.env.HOME = scratchDir('watch-home-')
    try {
      expect(watchHome()).toBe(path.join(process.env.HOME, '.posthog-watch'))
      const s = watchSettings(flags({ domain: 'ph.example.com' }), {})
      expect(s).toEqual({
        envFile: path.join(watchHome(), 'watch.env'),
        domain: 'ph.example.com',
        url: 'https://ph.example.com/_health',
        caFile: undefined,
        services: ['frps', 'nginx'],
        notify: { HEALTH_WEBHOOK_URL: '', HEALTH_WEBHOOK_FORMAT: 'json', HEALTH_REMIND_HOURS: '6' },
        stateFile: path.join(watchHome(), 'state.json'),
        runMs: 20_000,
      })
    } finally {
      process.env.HOME = home
    }
  })

  it('takes flags first, then the environment, then the settings file', () => {
    const envFile = settingsFile(
      'DOMAIN=file.example.com\nWATCH_SERVICES=frps\nWATCH_CA_FILE=/etc/ca.pem\n' +
        'HEALTH_WEBHOOK_FORMAT=text\nHEALTH_REMIND_HOURS=3\n',
    )
    const fromFile = watchSettings(flags({ 'env-file': envFile }), { HEALTH_REMIND_HOURS: '1' })
    expect(fromFile).toMatchObject({
      domain: 'file.example.com',
      url: 'https://file.example.com/_health',
      services: ['frps'],
      caFile: '/etc/ca.pem',
      notify: { HEALTH_WEBHOOK_FORMAT: 'text', HEALTH_REMIND_HOURS: '1' },
    })
    const fromFlags = watchSettings(
      flags({ 'env-file': envFile, domain: 'flag.example.com', services: 'caddy, frps', url: 'http://x/h' }),
      {},
    )
    expect(fromFlags).toMatchObject({
      domain: 'flag.example.com',
      url: 'http://x/h',
      services: ['caddy', 'frps'],
    })
  })

  it('refuses what it cannot watch', () => {
    const bad = (f: Partial<WatchFlags>, why: RegExp, env: NodeJS.ProcessEnv = {}) =>
      expect(() => watchSettings(flags(f), env)).toThrow(why)
    bad({}, /^no --domain \(or DOMAIN\) given/)
    bad({ domain: 'localhost' }, /^--domain=localhost must be the public hostname/)
    bad({ domain: 'ph.example.com', url: 'ph.example.com/_health' }, /^--url=.* must be an http\(s\) URL/)
    bad({ domain: 'ph.example.com', services: 'frps,rm -rf' }, /^--services: 'rm -rf' is not a unit/)
    bad({ domain: 'ph.example.com' }, /^HEALTH_WEBHOOK_FORMAT must be json or text/, {
      HEALTH_WEBHOOK_FORMAT: 'xml',
    })
    const missing = path.join(scratchDir('watch-settings-'), 'none.env')
    bad({ domain: 'ph.example.com', 'env-file': missing }, /^no settings file .*none.env: run with --install/)
    expect(() =>
      watchSettings(flags({ domain: 'ph.example.com', 'env-file': missing, install: true }), {}),
    ).not.toThrow()
    expect(() => watchSettings(flags({ domain: 'ph.example.com', timeout: 'soon' }), {})).toThrow(UsageError)
  })
})

describe('the settings file --install writes', () => {
  it('keeps other lines, and holds the notification settings only when they come from the environment', () => {
    const env = { HEALTH_WEBHOOK_URL: 'https://hooks.example.com/T0KEN' }
    const s = watchSettings(flags({ domain: 'ph.example.com', 'ca-file': 'ca.pem' }), env)
    const text = watchSettingsText('# mine\nOTHER=1\n', s, undefined, env)
    expect(text.startsWith('# mine\nOTHER=1\n')).toBe(true)
    expect(parseEnvText(text)).toEqual({
      OTHER: '1',
      DOMAIN: 'ph.example.com',
      WATCH_CA_FILE: path.resolve('ca.pem'),
      WATCH_SERVICES: 'frps,nginx',
      HEALTH_WEBHOOK_URL: 'https://hooks.example.com/T0KEN',
    })
    const fresh = watchSettingsText(undefined, s, 'https://ph.example.com/h', {})
    expect(fresh.split('\n')[0]).toMatch(/^# posthog-homelab remote\/watch.mts settings/)
    expect(parseEnvText(fresh)).toEqual({
      DOMAIN: 'ph.example.com',
      WATCH_URL: 'https://ph.example.com/h',
      WATCH_CA_FILE: path.resolve('ca.pem'),
      WATCH_SERVICES: 'frps,nginx',
    })
  })
})
