// The system user frps runs as on the VPS, and the files it may read: created with useradd on a
// real systemd host; with service manager `none` the command is only shown.
import fs from 'node:fs'
import { RuntimeFailure } from '../core/cli.mts'
import { run } from '../core/exec.mts'
import type { ServiceManager } from '../core/service.mts'

export interface Owner {
  uid: number
  gid: number
}

export function useraddArgs(user: string): string[] {
  return ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', user]
}

async function userExists(user: string): Promise<boolean> {
  const r = await run('id', ['-u', user], { nothrow: true, timeout: '30s' })
  return r.exitCode === 0
}

async function idOf(user: string, which: '-u' | '-g'): Promise<number> {
  return Number((await run('id', [which, user], { timeout: '10s' })).stdout.trim())
}

/** The user's uid and gid, the user created first when missing; undefined without systemd. */
export async function ensureSystemUser(
  user: string,
  manager: ServiceManager,
  say: (line: string) => void,
): Promise<Owner | undefined> {
  if (manager !== 'systemd') {
    say(`would run (as root, with systemd): ${['useradd', ...useraddArgs(user)].join(' ')}`)
    return undefined
  }
  if (!(await userExists(user))) {
    const r = await run('useradd', useraddArgs(user), { nothrow: true, timeout: '60s' })
    if (r.exitCode !== 0)
      throw new RuntimeFailure(`could not create the system user ${user}: ${r.stderr.trim()}`, 'run as root')
    say(`created system user ${user}`)
  }
  return { uid: await idOf(user, '-u'), gid: await idOf(user, '-g') }
}

/** A file the service reads: root-owned, group = its user, 0640; without that user only root reads it. */
export function readableBy(owner: Owner | undefined, file: string): void {
  if (!owner) return
  fs.chownSync(file, 0, owner.gid)
  fs.chmodSync(file, 0o640)
}
