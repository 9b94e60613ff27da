// remote/watch.mts as a black box: local HTTPS with a test CA, stand-in systemctl and crontab,
// a webhook receiver; and the bundled watch.mjs run with plain node from a folder with no node_modules.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleEntry } from '../../lib/core/bundle.mts'
import { findCronEntry } from '../../lib/monitor/schedule.mts'
import { expectNoSecrets } from '../helpers/common.ts'
import {
  type LeafCert,
  makeCa,
  makeLeaf,
  makeToolsDir,
  ROOT,
  run,
  SECRETS,
  scratch,
  startHttpsHealthServer,
  startWebhook,
  type TestCa,
  WEBHOOK_TOKEN,
  type Webhook,
} from '../helpers/monitor-env.ts'

const WATCH = path.join(ROOT, 'remote/watch.mts')

let ca: TestCa
let webhook: Webhook
const leaves: Record<number, LeafCert> = {}

beforeAll(async () => {
  ca = makeCa()
  webhook = await startWebhook()
  for (const days of [30, 10]) leaves[days] = makeLeaf(ca, days)
})
afterAll(async () => {
  await webhook.close()
})

function setup(extraEnv: Record<string, string> = {}) {
  const tools = makeToolsDir()
  const home = scratch('watch-home-')
  const env = { PATH: tools.path, HOME: home, HEALTH_WEBHOOK_URL: webhook.url, ...extraEnv }
  const watch = (args: string[], more: Record<string, string> = {}) =>
    run(WATCH, args, { cwd: home, env: { ...env, ...more }, timeoutMs: 30_000 })
  return { tools, home, env, watch }
}

describe('watch', () => {
  it('OK when the site answers through TLS and frps and nginx are active', async () => {
    const site = await startHttpsHealthServer(leaves[30]!)
    try {
      const { watch, tools } = setup()
      const r = await watch(['--url', site.url, '--ca-file', ca.caFile])
      expect(r.code).toBe(0)
      expect(r.stdout.trim().split('\n')).toEqual([
        'POSTHOG OK - 4 checks ok',
        `OK public: ${site.url} answers ok`,
        expect.stringMatching(/^OK certificate: expires in (29|30) days/),
        'OK frps: active',
        'OK nginx: active',
      ])
      expect(fs.readFileSync(tools.callsFile, 'utf8')).toContain('systemctl is-active frps')
      expectNoSecrets(r, SECRETS)
    } finally {
      await site.close()
    }
  })

  it('CRITICAL when nginx is down, with one notification; WARNING when the certificate runs short', async () => {
    const site = await startHttpsHealthServer(leaves[10]!)
    try {
      const { watch } = setup()
      const start = webhook.received.length
      const r1 = await watch(['--url', site.url, '--ca-file', ca.caFile], { INACTIVE_UNITS: 'nginx' })
      expect(r1.code).toBe(2)
      expect(r1.stdout).toContain('CRITICAL nginx: inactive: systemctl status nginx')
      expect(webhook.received.length).toBe(start + 1)
      expect(JSON.parse(webhook.received.at(-1)!.body)).toMatchObject({
        status: 'CRITICAL',
        reason: 'changed',
      })
      const r2 = await watch(['--url', site.url, '--ca-file', ca.caFile], { INACTIVE_UNITS: 'nginx' })
      expect(r2.code).toBe(2)
      expect(webhook.received.length).toBe(start + 1)
      const r3 = await watch(['--url', site.url, '--ca-file', ca.caFile])
      expect(r3.code).toBe(1)
      expect(r3.stdout).toMatch(/^WARNING certificate: expires in (9|10) days/m)
      expect(webhook.received.length).toBe(start + 2)
      for (const r of [r1, r2, r3]) expectNoSecrets(r, SECRETS)
    } finally {
      await site.close()
    }
  })

  it('CRITICAL when the home side is unreachable', async () => {
    const site = await startHttpsHealthServer(leaves[30]!)
    const url = site.url
    await site.close()
    const { watch } = setup()
    const r = await watch(['--url', url, '--ca-file', ca.caFile])
    expect(r.code).toBe(2)
    expect(r.stdout).toContain(`CRITICAL public: ${url}: connection refused`)
  })

  it('--install saves the settings (0600, token out of the crontab) and a marked entry, idempotently', async () => {
    const { watch, tools, home } = setup()
    const args = ['--domain', 'ph.example.com', '--install']
    const r1 = await watch(args)
    expect(r1.code).toBe(0)
    expectNoSecrets(r1, SECRETS)
    const envFile = path.join(home, '.posthog-watch', 'watch.env')
    expect(fs.statSync(envFile).mode & 0o777).toBe(0o600)
    const settings = fs.readFileSync(envFile, 'utf8')
    expect(settings).toContain('DOMAIN=ph.example.com')
    expect(settings).toContain(WEBHOOK_TOKEN)
    const tab = fs.readFileSync(tools.crontabFile, 'utf8')
    const entry = findCronEntry(tab, 'watch')!
    expect(entry).toMatch(/^\*\/5 \* \* \* \* cd /)
    expect(entry).toContain(`--env-file ${envFile}`)
    expect(tab).not.toContain(WEBHOOK_TOKEN)
    const r2 = await watch(args)
    expect(r2.stdout).toContain('settings')
    expect(r2.stdout).toContain(': unchanged')
    expect(fs.readFileSync(tools.crontabFile, 'utf8')).toBe(tab)
    const r3 = await watch(['--uninstall'])
    expect(r3.stdout).toContain("crontab entry 'posthog-homelab:watch': removed")
    expect(fs.readFileSync(tools.crontabFile, 'utf8')).toBe('')
  })

  it('a missing or bad domain is UNKNOWN (exit 3) for a check, exit 2 for --install; one line', async () => {
    const { watch } = setup()
    for (const args of [[], ['--domain', 'not a host']]) {
      const r = await watch(args)
      expect(r.code).toBe(3)
      expect(r.stdout.split('\n')[0]).toMatch(
        /^POSTHOG UNKNOWN - watch: (no --domain|--domain=not a host must be)/,
      )
      expect(r.stderr).toBe('')
      const install = await watch([...args, '--install'])
      expect(install.code).toBe(2)
      expect(install.stderr.trim().split('\n')).toHaveLength(1)
    }
  })

  it('an unreadable --ca-file: UNKNOWN for a check, exit 2 at --install (nothing installed)', async () => {
    const { watch, tools, home } = setup()
    const missing = path.join(home, 'no-ca.pem')
    const check = await watch(['--domain', 'ph.example.com', '--ca-file', missing])
    expect(check.code).toBe(3)
    expect(check.stdout.split('\n')[0]).toMatch(
      new RegExp(`^POSTHOG UNKNOWN - watch: --ca-file ${missing} cannot be read \\(ENOENT\\)`),
    )
    const install = await watch(['--domain', 'ph.example.com', '--ca-file', missing, '--install'])
    expect(install.code).toBe(2)
    expect(install.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(`^watch: error: --ca-file ${missing} cannot be read \\(ENOENT\\)`),
    ])
    expect(fs.existsSync(tools.crontabFile) ? fs.readFileSync(tools.crontabFile, 'utf8') : '').toBe('')
    expect(fs.existsSync(path.join(home, '.posthog-watch', 'watch.env'))).toBe(false)
  })

  it('a hung unit check and a hung webhook still end the run within its limit', async () => {
    const site = await startHttpsHealthServer(leaves[30]!)
    const hook = await startWebhook({ hang: true })
    try {
      const { watch, tools } = setup({ HEALTH_WEBHOOK_URL: hook.url })
      // systemctl that never answers (a systemd stuck on a full disk).
      fs.writeFileSync(path.join(tools.bin, 'systemctl'), '#!/bin/sh\nexec sleep 120\n', { mode: 0o755 })
      const r = await watch(['--url', site.url, '--ca-file', ca.caFile, '--timeout', '4s'])
      expect(r.code, r.stdout).toBe(3)
      expect(r.stdout.split('\n')[0]).toMatch(/^POSTHOG UNKNOWN - frps: /)
      expect(r.stderr).toContain('notification not sent: the webhook did not answer in time')
      expect(hook.received).toHaveLength(1)
      expect(r.ms).toBeLessThan(25_000) // a bound, not a benchmark: the stuck systemctl would take 120 s
    } finally {
      await site.close()
      await hook.close()
    }
  })

  it('runs bundled with plain node from a folder without node_modules', async () => {
    const dir = scratch('watch-bundle-')
    const out = path.join(dir, 'watch.mjs')
    await bundleEntry(WATCH, out)
    const site = await startHttpsHealthServer(leaves[30]!)
    try {
      const { env, home } = setup()
      const r = await run(out, ['--url', site.url, '--ca-file', ca.caFile], {
        cwd: home,
        env,
        tsx: false,
        timeoutMs: 30_000,
      })
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
      expect(r.stdout.split('\n')[0]).toBe('POSTHOG OK - 4 checks ok')
    } finally {
      await site.close()
    }
  })
})
