import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  DEFAULT_ACME_WEBROOT,
  listenList,
  parsePort,
  requireDomain,
  siteSettingsOf,
  validateNginxPath,
} from '../../../lib/tunnel/nginx-settings.mts'

describe('site settings', () => {
  it('fill in the defaults: ports 80 and 443 on IPv4 and IPv6, the toolkit webroot', () => {
    expect(siteSettingsOf({ upstreamPort: 12080 })).toEqual({
      upstreamPort: 12080,
      httpListen: ['80', '[::]:80'],
      httpsListen: ['443', '[::]:443'],
      acmeWebroot: DEFAULT_ACME_WEBROOT,
    })
  })

  it('take a domain only when there is one, in lower case', () => {
    expect(requireDomain('PostHog.Example.com')).toBe('posthog.example.com')
    expect(() => requireDomain(undefined)).toThrow(/no domain: pass --domain/)
    expect(() => requireDomain('')).toThrow(UsageError)
    expect(() => requireDomain('not a host')).toThrow(/is not a hostname/)
  })

  it('read ports from text and refuse anything else', () => {
    expect(parsePort('7000', '--bind-port')).toBe(7000)
    for (const bad of ['', '0', '70000', '12.5', '80 ', '-1', '0x50'])
      expect(() => parsePort(bad, '--bind-port')).toThrow(/--bind-port .* is not a port/)
  })

  it('split listen lists on commas; an empty value means the default', () => {
    expect(listenList('127.0.0.1:8080, [::1]:8080')).toEqual(['127.0.0.1:8080', '[::1]:8080'])
    expect(listenList('')).toBeUndefined()
    expect(() => siteSettingsOf({ upstreamPort: 1, httpListen: listenList(' , ') })).toThrow(
      /a listen list cannot be empty/,
    )
  })

  it('take absolute paths nginx can read as one word, naming the flag otherwise', () => {
    expect(validateNginxPath('/var/www/acme', '--acme-webroot')).toBe('/var/www/acme')
    expect(() => validateNginxPath('/var/www/$host', '--acme-webroot')).toThrow(
      /--acme-webroot '\/var\/www\/\$host'/,
    )
    expect(() => validateNginxPath('www', '--acme-webroot')).toThrow(UsageError)
  })
})
