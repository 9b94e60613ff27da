// How the toolkit drives nginx: is it there, `nginx -t` with its error in one line, and reload
// (the system's nginx through systemd when systemd runs, a private one started with `-c CONF`).
import fs from 'node:fs'
import { RuntimeFailure } from '../core/cli.mts'
import { run } from '../core/exec.mts'

export interface NginxControl {
  nginxBin: string
  /** Arguments of the config test: `-t`, plus `-c CONF` for a private nginx. */
  testArgs: string[]
  reload: () => Promise<void>
}

async function defaultReload(nginxBin: string): Promise<void> {
  if (fs.existsSync('/run/systemd/system'))
    await run('systemctl', ['reload-or-restart', 'nginx'], { timeout: '60s' })
  else await run(nginxBin, ['-s', 'reload'], { timeout: '30s' })
}

/** How to test and reload nginx: the system's, or one started with `-c CONF` (a private nginx in tests). */
export function nginxControl(nginxBin: string, conf?: string): NginxControl {
  if (!conf) return { nginxBin, testArgs: ['-t'], reload: () => defaultReload(nginxBin) }
  return {
    nginxBin,
    testArgs: ['-t', '-c', conf],
    reload: async () => {
      await run(nginxBin, ['-c', conf, '-s', 'reload'], { timeout: '30s' })
    },
  }
}

/** Refuses to go on without nginx: the site is bad input for nothing then. */
export async function requireNginx(nginxBin: string): Promise<void> {
  const r = await run(nginxBin, ['-v'], { nothrow: true, timeout: '30s' })
  if (r.exitCode !== 0)
    throw new RuntimeFailure(
      `nginx is not installed (${nginxBin} -v failed)`,
      'apt-get install -y nginx, then re-run',
    )
}

/** Last meaningful line of `nginx -t` output, e.g. `unknown directive "x" in /etc/...:12`. */
export function nginxError(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.replace(/^nginx: (\[emerg\] )?/, '').trim())
    .filter((l) => l && !/test failed|syntax is ok/.test(l))
  return lines[0] ?? 'nginx -t failed'
}

/** `nginx -t` after `file` changed: undefined when it passes, else the failure to report. */
export async function testNginx(control: NginxControl, file: string): Promise<RuntimeFailure | undefined> {
  const { nginxBin } = control
  const test = await run(nginxBin, control.testArgs, { nothrow: true, timeout: '30s' })
  if (test.ok) return undefined
  if (test.exitCode === 127)
    return new RuntimeFailure(
      `${nginxBin} not found, so the site was not installed`,
      'install nginx (apt-get install nginx) and re-run',
    )
  return new RuntimeFailure(
    `nginx rejected the new site ${file} (${nginxError(test.stderr || test.stdout)}); the previous files are back and nginx keeps serving`,
    'fix the reported line (or the file it names) and re-run',
  )
}
