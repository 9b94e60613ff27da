import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RuntimeFailure } from '../../../lib/core/cli.mts'
import { installNginxSite, nginxTarget, readInstalledSite } from '../../../lib/tunnel/nginx-install.mts'
import { buildNginxSite } from '../../../lib/tunnel/nginx-site.mts'
import { scratchDir } from '../../helpers/common.ts'

const base = { domain: 'posthog.example.com', upstreamPort: 12080 }
const tls = {
  certificate: '/etc/letsencrypt/live/posthog.example.com/fullchain.pem',
  key: '/etc/letsencrypt/live/posthog.example.com/privkey.pem',
}

describe('installNginxSite', () => {
  let dir: string
  let available: string
  let enabled: string
  let webroot: string
  let reloads: number
  const log: string[] = []
  const ok = ['-c', 'exit 0']
  const failing = [
    '-c',
    'echo \'nginx: [emerg] unknown directive "bogus" in /etc/nginx/conf.d/x.conf:3\' >&2; exit 1',
  ]
  const opts = (testArgs: string[], over: Partial<Parameters<typeof buildNginxSite>[0]> = {}) => ({
    ...base,
    acmeWebroot: webroot,
    ...over,
    sitesAvailableDir: available,
    sitesEnabledDir: enabled,
    nginxBin: '/bin/sh',
    nginxTestArgs: testArgs,
    reload: async () => {
      reloads++
    },
    log: (l: string) => log.push(l),
  })

  beforeEach(() => {
    dir = scratchDir('nginx-unit-')
    available = path.join(dir, 'sites-available')
    enabled = path.join(dir, 'sites-enabled')
    webroot = path.join(dir, 'www/acme')
    reloads = 0
    log.length = 0
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  const siteFile = () => path.join(available, 'posthog.example.com.conf')
  const link = () => path.join(enabled, 'posthog.example.com.conf')
  const backups = () => fs.readdirSync(available).filter((f) => f.includes('.bak-'))

  it('writes, makes the webroot, enables, tests and reloads; a re-run changes nothing and does not reload', async () => {
    expect(await installNginxSite(opts(ok))).toBe('created')
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(buildNginxSite({ ...base, acmeWebroot: webroot }))
    expect(fs.statSync(webroot).isDirectory()).toBe(true)
    expect(fs.readlinkSync(link())).toBe(siteFile())
    expect(reloads).toBe(1)
    const mtime = fs.statSync(siteFile()).mtimeMs
    expect(await installNginxSite(opts(ok))).toBe('unchanged')
    expect(fs.statSync(siteFile()).mtimeMs).toBe(mtime)
    expect(reloads).toBe(1)
    expect(log.at(-1)).toMatch(/is up to date$/)
  })

  it('keeps a backup of the file it replaces and says where', async () => {
    await installNginxSite(opts(ok))
    expect(await installNginxSite(opts(ok, { tls }))).toBe('updated')
    expect(backups()).toHaveLength(1)
    expect(fs.readFileSync(path.join(available, backups()[0]!), 'utf8')).not.toContain('ssl_certificate')
    expect(log.at(-1)).toContain(`previous file kept as ${path.join(available, backups()[0]!)}`)
  })

  it('takes over a site certbot --nginx edited, keeping that file as the backup', async () => {
    const edited = 'server {\n    listen 443 ssl; # managed by Certbot\n}\n'
    fs.mkdirSync(available, { recursive: true })
    fs.writeFileSync(siteFile(), edited)
    expect(await installNginxSite(opts(ok, { tls }))).toBe('updated')
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(buildNginxSite({ ...base, acmeWebroot: webroot, tls }))
    expect(fs.readFileSync(path.join(available, backups()[0]!), 'utf8')).toBe(edited)
    expect(log.at(-1)).toMatch(
      /replaced: the toolkit now writes the whole site, certbot's edits are kept in /,
    )
  })

  it('puts the previous file back when nginx -t fails, drops the backup, does not reload, and says why in one line', async () => {
    await installNginxSite(opts(ok))
    const before = fs.readFileSync(siteFile(), 'utf8')
    const attempt = installNginxSite(opts(failing, { upstreamPort: 13080 }))
    await expect(attempt).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(attempt).rejects.toThrow(/unknown directive "bogus" in \/etc\/nginx\/conf\.d\/x\.conf:3/)
    expect(fs.readFileSync(siteFile(), 'utf8')).toBe(before)
    expect(backups()).toEqual([])
    expect(reloads).toBe(1)
  })

  it('removes a new site and its link again when nginx -t fails on the first install', async () => {
    await expect(installNginxSite(opts(failing))).rejects.toBeInstanceOf(RuntimeFailure)
    expect(fs.existsSync(siteFile())).toBe(false)
    expect(fs.existsSync(link())).toBe(false)
    expect(reloads).toBe(0)
  })

  it('says to install nginx when there is none, and leaves nothing behind', async () => {
    const attempt = installNginxSite({ ...opts(ok), nginxBin: path.join(dir, 'no-nginx') })
    await expect(attempt).rejects.toMatchObject({
      message: expect.stringMatching(/no-nginx not found/),
      fix: expect.stringMatching(/apt-get install nginx/),
    })
    expect(fs.existsSync(siteFile())).toBe(false)
  })

  it('refuses to replace a regular file where the enabling symlink goes', async () => {
    fs.mkdirSync(enabled, { recursive: true })
    fs.writeFileSync(link(), 'user file')
    await expect(installNginxSite(opts(ok))).rejects.toThrow(/is not a symlink/)
    expect(fs.readFileSync(link(), 'utf8')).toBe('user file')
  })

  it('works without a sites-enabled dir (conf.d layout)', async () => {
    expect(await installNginxSite({ ...opts(ok), sitesEnabledDir: undefined })).toBe('created')
    expect(fs.existsSync(enabled)).toBe(false)
  })
})

describe('the installed site, read back', () => {
  let dir: string
  beforeEach(() => {
    dir = scratchDir('nginx-read-')
  })
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('gives the settings frps-setup recorded, so certbot renders the same site', () => {
    const opts = { ...base, upstreamPort: 13080, httpListen: ['127.0.0.1:8080'], acmeWebroot: '/srv/acme' }
    fs.writeFileSync(path.join(dir, 'posthog.example.com.conf'), buildNginxSite(opts))
    expect(readInstalledSite(dir, 'PostHog.example.com')).toEqual({
      upstreamPort: 13080,
      httpListen: ['127.0.0.1:8080'],
      httpsListen: ['443', '[::]:443'],
      acmeWebroot: '/srv/acme',
    })
  })

  it('is a failure that says to run frps-setup when the site is missing or another version wrote it', () => {
    expect(() => readInstalledSite(dir, 'posthog.example.com')).toThrow(
      /no nginx site for posthog\.example\.com \(.*posthog\.example\.com\.conf is missing\)/,
    )
    fs.writeFileSync(
      path.join(dir, 'posthog.example.com.conf'),
      'server { listen 80; } # managed by Certbot\n',
    )
    expect(() => readInstalledSite(dir, 'posthog.example.com')).toThrow(RuntimeFailure)
    expect(() => readInstalledSite(dir, 'posthog.example.com')).toThrow(/was not written by this version/)
  })
})

describe('nginxTarget', () => {
  const flags = {
    'sites-available-dir': 'sites',
    'sites-enabled-dir': '/etc/nginx/sites-enabled',
    'nginx-bin': 'nginx',
    'nginx-conf': undefined,
    help: false,
    debug: false,
    _: [],
  }

  it('resolves the folders and enables the site with a link', () => {
    expect(nginxTarget(flags)).toEqual({
      sitesAvailableDir: path.resolve('sites'),
      sitesEnabledDir: '/etc/nginx/sites-enabled',
      nginxBin: 'nginx',
    })
  })

  it("links nothing with an empty sites-enabled dir (conf.d layout), and names a private nginx's config", () => {
    const target = nginxTarget({ ...flags, 'sites-enabled-dir': '', 'nginx-conf': 'private/nginx.conf' })
    expect(target.sitesEnabledDir).toBeUndefined()
    expect(target.nginxConf).toBe(path.resolve('private/nginx.conf'))
  })
})
