import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import { liveFiles } from '../../../lib/tunnel/certbot.mts'
import { frpsSiteOptions } from '../../../lib/tunnel/frps-site.mts'
import { scratchDir } from '../../helpers/common.ts'

let dir: string
const log = () => {}
const flags = () => ({
  'sites-available-dir': '/etc/nginx/sites-available',
  'sites-enabled-dir': '/etc/nginx/sites-enabled',
  'nginx-bin': 'nginx',
  'nginx-conf': undefined,
  'http-listen': '80,[::]:80',
  'https-listen': '443,[::]:443',
  'acme-webroot': '/var/www/posthog-homelab',
  'letsencrypt-dir': path.join(dir, 'letsencrypt'),
  help: false,
  debug: false,
  _: [],
})
const site = { domain: 'ph.example.com', upstreamPort: 12080, log }

beforeAll(() => {
  dir = scratchDir('frps-site-')
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('the site frps-setup installs', () => {
  it('is plain http into the tunnel before certbot got a certificate', () => {
    expect(frpsSiteOptions(flags(), site)).toEqual({
      ...site,
      httpListen: ['80', '[::]:80'],
      httpsListen: ['443', '[::]:443'],
      acmeWebroot: '/var/www/posthog-homelab',
      tls: undefined,
      sitesAvailableDir: '/etc/nginx/sites-available',
      sitesEnabledDir: '/etc/nginx/sites-enabled',
      nginxBin: 'nginx',
    })
  })

  it("serves https with certbot's live files once both are there", () => {
    const files = liveFiles(path.join(dir, 'letsencrypt'), site.domain)
    fs.mkdirSync(path.dirname(files.certificate), { recursive: true })
    fs.writeFileSync(files.certificate, 'chain')
    expect(frpsSiteOptions(flags(), site).tls).toBeUndefined()
    fs.writeFileSync(files.key, 'key')
    expect(frpsSiteOptions(flags(), site).tls).toEqual(files)
  })

  it('takes the listen values given, and refuses a webroot nginx cannot serve', () => {
    const opts = frpsSiteOptions({ ...flags(), 'http-listen': '127.0.0.1:8080', 'https-listen': '' }, site)
    expect(opts.httpListen).toEqual(['127.0.0.1:8080'])
    expect(opts.httpsListen).toBeUndefined()
    expect(() => frpsSiteOptions({ ...flags(), 'acme-webroot': '/var/www/my site' }, site)).toThrow(
      UsageError,
    )
    expect(() => frpsSiteOptions({ ...flags(), 'acme-webroot': '/var/www/my site' }, site)).toThrow(
      /--acme-webroot/,
    )
  })
})
