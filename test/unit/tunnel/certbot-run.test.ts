// The certbot steps with a stand-in certbot that records its arguments; the real certbot against
// Pebble runs in test/e2e/public-path.test.ts.
import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RuntimeFailure } from '../../../lib/core/cli.mts'
import { deployHookPath } from '../../../lib/tunnel/certbot.mts'
import {
  type Certbot,
  checkRenewal,
  ensureCertbot,
  installDeployHook,
  obtainCertificate,
} from '../../../lib/tunnel/certbot-run.mts'
import { scratchDir } from '../../helpers/common.ts'

let dir: string
let certbot: Certbot
let calls: string
const said: string[] = []
const say = (line: string) => said.push(line)
const request = { domain: 'ph.example.com', email: 'me@example.com', staging: false }

beforeEach(() => {
  dir = scratchDir('certbot-run-')
  calls = path.join(dir, 'calls.log')
  const bin = path.join(dir, 'certbot')
  // `plugins` lists webroot; anything else is recorded, and fails like a refused validation with FAIL
  fs.writeFileSync(
    bin,
    `#!/bin/sh
if [ "$1" = plugins ]; then printf '* webroot\\nDescription: Place files in webroot directory\\n'; exit 0; fi
echo "$*" >> "${calls}"
if [ -n "$FAKE_CERTBOT_FAIL" ]; then printf '  Type:   unauthorized\\n  Detail: 403 from the challenge\\n' >&2; exit 1; fi
`,
    { mode: 0o755 },
  )
  certbot = {
    certbotBin: bin,
    configDir: path.join(dir, 'le'),
    workDir: path.join(dir, 'work'),
    logsDir: path.join(dir, 'logs'),
  }
  said.length = 0
})
afterEach(() => {
  delete process.env.FAKE_CERTBOT_FAIL
  fs.rmSync(dir, { recursive: true, force: true })
})

const recorded = () => (fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8').trim().split('\n') : [])

describe('ensureCertbot', () => {
  it('is done when certbot has its webroot plugin', async () => {
    await ensureCertbot(certbot, true, say)
    expect(said).toEqual([])
  })

  it('says what to do when certbot is missing and installing was turned off', async () => {
    const missing = { ...certbot, certbotBin: path.join(dir, 'no-certbot') }
    await expect(ensureCertbot(missing, true, say)).rejects.toThrow(/no-certbot is not available$/)
    await expect(ensureCertbot(missing, true, say)).rejects.toMatchObject({
      fix: 'install certbot, or drop --skip-install',
    })
  })
})

describe('obtainCertificate', () => {
  const webroot = () => path.join(dir, 'acme')

  it('requests nothing for a certificate it keeps', async () => {
    await obtainCertificate(certbot, request, webroot(), { kind: 'keep', daysLeft: 80 }, say)
    expect(recorded()).toEqual([])
    expect(said).toEqual(['certificate for ph.example.com is valid (80 days left): nothing issued'])
  })

  it('gets one with certonly --webroot from the webroot it makes', async () => {
    await obtainCertificate(certbot, request, webroot(), { kind: 'issue' }, say)
    expect(fs.statSync(webroot()).isDirectory()).toBe(true)
    expect(recorded()[0]).toMatch(
      new RegExp(
        `^certonly --webroot -w ${webroot()} --cert-name ph\\.example\\.com .*--keep-until-expiring`,
      ),
    )
  })

  it('replaces a staging certificate with --force-renewal, and says so', async () => {
    await obtainCertificate(certbot, request, webroot(), { kind: 'replace-test-cert' }, say)
    expect(recorded()[0]).toContain('--force-renewal')
    expect(said).toEqual(['replacing the untrusted staging certificate for ph.example.com with a real one'])
  })

  it("fails in one line with the CA's reason and where the log is", async () => {
    process.env.FAKE_CERTBOT_FAIL = '1'
    const attempt = obtainCertificate(certbot, request, webroot(), { kind: 'issue' }, say)
    await expect(attempt).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(attempt).rejects.toMatchObject({
      message: 'certbot certonly for ph.example.com failed: unauthorized: 403 from the challenge',
      fix: `the nginx site is unchanged; see ${path.join(certbot.logsDir, 'letsencrypt.log')}, fix the cause and re-run`,
    })
  })
})

describe('checkRenewal', () => {
  it('dry-runs the renewal of this certificate and says it passed', async () => {
    await checkRenewal(certbot, request, say)
    expect(recorded()[0]).toMatch(/^renew --dry-run --cert-name ph\.example\.com /)
    expect(said).toEqual(['renewal dry run passed: certbot will renew this certificate on its own'])
  })
})

describe('installDeployHook', () => {
  it('installs an executable hook once, and keeps a replaced one only as a file that cannot run', () => {
    const hook = deployHookPath(certbot.configDir)
    installDeployHook(certbot.configDir, { nginxBin: 'nginx' }, say)
    expect(fs.statSync(hook).mode & 0o777).toBe(0o755)
    expect(said).toEqual([`deploy hook created: ${hook} (tests and reloads nginx after each renewal)`])
    installDeployHook(certbot.configDir, { nginxBin: 'nginx' }, say)
    expect(said).toHaveLength(1)
    installDeployHook(certbot.configDir, { nginxBin: 'nginx', nginxConf: '/srv/nginx.conf' }, say)
    expect(fs.readFileSync(hook, 'utf8')).toContain("'nginx' -c '/srv/nginx.conf' -t -q")
    const copies = fs.readdirSync(path.dirname(hook)).filter((f) => f.includes('.bak-'))
    expect(copies).toHaveLength(1)
    expect(fs.statSync(path.join(path.dirname(hook), copies[0]!)).mode & 0o111).toBe(0)
  })
})
