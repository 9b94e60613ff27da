// ufw on the VPS: when it is active, the port frpc connects to and http(s) are allowed; when it is
// missing or inactive nothing is run, and the provider's firewall is named as the one to open.
import { RuntimeFailure } from '../core/cli.mts'
import { type CommandResult, run } from '../core/exec.mts'

export type UfwState = 'missing' | 'inactive' | 'active'

/** What `ufw status` says about ufw. */
export function ufwState(status: Pick<CommandResult, 'exitCode' | 'stdout' | 'stderr'>): UfwState {
  if (status.exitCode === 127 || /command not found|No such file/.test(status.stderr)) return 'missing'
  return /^Status: active/m.test(status.stdout) ? 'active' : 'inactive'
}

/** The rules the tunnel and the site need: frpc's port, http and https. */
export function ufwRules(bindPort: number): string[] {
  return [`${bindPort}/tcp`, '80/tcp', '443/tcp']
}

export async function openFirewall(
  ufwBin: string,
  bindPort: number,
  say: (line: string) => void,
): Promise<void> {
  const state = ufwState(await run(ufwBin, ['status'], { nothrow: true, timeout: '30s' }))
  if (state === 'missing') {
    say(`ufw is not installed: make sure your provider's firewall allows ${bindPort}, 80 and 443 (TCP)`)
    return
  }
  if (state === 'inactive') {
    say(`ufw is not active: nothing to open (your provider's firewall must allow ${bindPort}, 80 and 443)`)
    return
  }
  const rules = ufwRules(bindPort)
  for (const rule of rules) {
    const r = await run(ufwBin, ['allow', rule], { nothrow: true, timeout: '30s' })
    if (r.exitCode !== 0)
      throw new RuntimeFailure(
        `'ufw allow ${rule}' failed: ${r.stderr.trim() || r.stdout.trim()}`,
        'run as root',
      )
  }
  say(`ufw is active: allowed ${rules.join(', ')}`)
}
