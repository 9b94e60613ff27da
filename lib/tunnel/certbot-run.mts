// Running certbot on the VPS: installing it when the webroot plugin is missing, getting or keeping
// the certificate (progress shown while certbot works, its failure in one line), the renewal dry
// run, and the deploy hook that reloads nginx after each renewal.
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure } from '../core/cli.mts'
import { lastLine, run } from '../core/exec.mts'
import { writeFileAtomic } from '../core/fs.mts'
import { startProgress } from '../core/health.mts'
import {
  buildDeployHook,
  type CertbotPaths,
  type CertificateRequest,
  certbotReason,
  certonlyArgs,
  deployHookPath,
  renewDryRunArgs,
} from './certbot.mts'
import type { CertificateAction } from './certificate.mts'

export interface Certbot extends CertbotPaths {
  certbotBin: string
}

type Say = (line: string) => void

async function hasWebrootPlugin(c: Certbot): Promise<boolean> {
  const dirs = ['--config-dir', c.configDir, '--work-dir', c.workDir, '--logs-dir', c.logsDir]
  const out = await run(c.certbotBin, ['plugins', ...dirs], { nothrow: true, timeout: '60s' })
  return out.ok && /^\* webroot$/m.test(out.stdout)
}

/** certbot with its webroot plugin, installed with apt-get when missing (unless `skipInstall`). */
export async function ensureCertbot(c: Certbot, skipInstall: boolean, say: Say): Promise<void> {
  if (await hasWebrootPlugin(c)) return
  if (skipInstall)
    throw new RuntimeFailure(`${c.certbotBin} is not available`, 'install certbot, or drop --skip-install')
  say('installing certbot with apt-get ...')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = await run('apt-get', ['update', '-qq'], { nothrow: true, timeout: '5m', env })
  const install = update.ok
    ? await run('apt-get', ['install', '-y', '-qq', 'certbot'], { nothrow: true, timeout: '10m', env })
    : update
  if (!install.ok || !(await hasWebrootPlugin(c)))
    throw new RuntimeFailure(
      `could not install certbot (${lastLine({ stdout: '', stderr: install.stderr }) || `exit ${install.exitCode}`})`,
      'run `apt-get install certbot` as root and re-run',
    )
}

/** Runs certbot with a progress line; a failure says what `state` things are left in. */
async function runCertbot(c: Certbot, args: string[], label: string, state: string): Promise<void> {
  const started = Date.now()
  const stop = startProgress({ snapshot: () => ({ label, elapsedMs: Date.now() - started }) })
  try {
    const out = await run(c.certbotBin, args, { nothrow: true, timeout: '5m' })
    if (!out.ok)
      throw new RuntimeFailure(
        `${label} failed: ${certbotReason(`${out.stderr}\n${out.stdout}`)}`,
        `${state}; see ${path.join(c.logsDir, 'letsencrypt.log')}, fix the cause and re-run`,
      )
  } finally {
    stop()
  }
}

/** Keeps a current certificate, or gets one with the challenge answered from `webroot`. */
export async function obtainCertificate(
  c: Certbot,
  request: CertificateRequest,
  webroot: string,
  action: CertificateAction,
  say: Say,
): Promise<void> {
  const { domain } = request
  if (action.kind === 'keep') {
    say(`certificate for ${domain} is valid (${action.daysLeft} days left): nothing issued`)
    return
  }
  const replace = action.kind === 'replace-test-cert'
  if (replace) say(`replacing the untrusted staging certificate for ${domain} with a real one`)
  fs.mkdirSync(webroot, { recursive: true, mode: 0o755 })
  const args = certonlyArgs({ ...c, ...request, webroot, forceRenewal: replace })
  await runCertbot(c, args, `certbot certonly for ${domain}`, 'the nginx site is unchanged')
}

/** `certbot renew --dry-run` against the server the certificate came from. */
export async function checkRenewal(c: Certbot, request: CertificateRequest, say: Say): Promise<void> {
  const args = renewDryRunArgs({ ...c, ...request })
  await runCertbot(c, args, 'renewal dry run', 'https keeps working until the certificate expires')
  say('renewal dry run passed: certbot will renew this certificate on its own')
}

/** The hook that tests and reloads nginx after each renewal; kept copies of an old one made inert. */
export function installDeployHook(
  configDir: string,
  nginx: { nginxBin?: string; nginxConf?: string },
  say: Say,
): void {
  const hook = deployHookPath(configDir)
  const dir = path.dirname(hook)
  fs.mkdirSync(dir, { recursive: true })
  const result = writeFileAtomic(hook, buildDeployHook(nginx), { mode: 0o755, backup: true })
  if (result !== 'unchanged')
    say(`deploy hook ${result}: ${hook} (tests and reloads nginx after each renewal)`)
  // certbot runs every executable file in the hooks folder: a kept copy of an old hook must not run.
  for (const name of fs.readdirSync(dir))
    if (name.startsWith(`${path.basename(hook)}.bak-`)) fs.chmodSync(path.join(dir, name), 0o644)
}
