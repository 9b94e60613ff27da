// Services the toolkit installs, as pure builders (systemd units, launchd property lists) and the
// thin I/O that writes one and (re)loads it only when something changed. The tunnel (frpc, frps)
// and the boot job are built from these.
import fs from 'node:fs'
import { RuntimeFailure, UsageError } from './cli.mts'
import { lastLine, run } from './exec.mts'
import { writeFileAtomic } from './fs.mts'
import { plistKey as key, plistDocument, plistStringArray, plistString as str } from './plist.mts'

export interface SystemdUnit {
  description: string
  /** Absolute executable path + arguments. */
  execStart: string[]
  /** `<bin> verify -c <file>` before every start: a broken file never replaces a running tunnel. */
  execStartPre?: string[]
  user?: string
  /** Group= the user's name (default), or none (`false`): the user's primary group. */
  groupFromUser?: boolean
  /** Directories the service may write (everything else is read-only with ProtectSystem=strict). */
  readWritePaths: string[]
  /**
   * `daemon` (default): a long-running service, restarted on failure and sandboxed.
   * `oneshot`: a job that runs once per start and stays "active (exited)" after it succeeds,
   * with the rights of its user (no sandbox, no restart).
   */
  kind?: 'daemon' | 'oneshot'
  /** Ordering and dependencies; default After= and Wants= network-online.target. */
  after?: string[]
  wants?: string[]
  requires?: string[]
  workingDirectory?: string
  environment?: Record<string, string>
  /** TimeoutStartSec= in seconds (default: systemd's). */
  timeoutStartSec?: number
}

const UNSAFE = /[\n\r\0]/

/** One systemd command-line word: quoted when needed, `%` and `$` escaped (systemd.service "COMMAND LINES"). */
export function systemdWord(word: string): string {
  if (UNSAFE.test(word)) throw new Error(`'${word}' cannot appear in a systemd unit`)
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$')
  return /^[\w/.:@+=,%$-]+$/.test(escaped)
    ? escaped
    : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

function commandLine(argv: string[]): string {
  if (!argv[0]?.startsWith('/'))
    throw new Error(`systemd needs an absolute executable path, got '${argv[0]}'`)
  return argv.map(systemdWord).join(' ')
}

function singleLine(v: string): string {
  if (UNSAFE.test(v)) throw new Error(`'${v}' cannot appear in a systemd unit`)
  return v
}

/** `Environment="NAME=value"`: `%` escaped (specifiers), `$` is literal there. */
function environmentLine(name: string, value: string): string {
  if (!/^[A-Za-z_]\w*$/.test(name)) throw new Error(`'${name}' is not an environment variable name`)
  const assignment = singleLine(`${name}=${value}`).replace(/%/g, '%%')
  return `Environment="${assignment.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

const DAEMON_SERVICE = [
  'Restart=on-failure',
  'RestartSec=5s',
  'LimitNOFILE=1048576',
  'NoNewPrivileges=yes',
  'ProtectSystem=strict',
  'ProtectHome=yes',
  'PrivateTmp=yes',
]

export function buildSystemdUnit(u: SystemdUnit): string {
  const daemon = (u.kind ?? 'daemon') === 'daemon'
  const group = u.user && u.groupFromUser !== false ? [`Group=${singleLine(u.user)}`] : []
  const service = [
    daemon ? 'Type=simple' : 'Type=oneshot',
    ...(daemon ? [] : ['RemainAfterExit=yes']),
    ...(u.user ? [`User=${singleLine(u.user)}`, ...group] : []),
    ...(u.workingDirectory ? [`WorkingDirectory=${singleLine(u.workingDirectory).replace(/%/g, '%%')}`] : []),
    ...Object.entries(u.environment ?? {}).map(([k, v]) => environmentLine(k, v)),
    ...(u.execStartPre ? [`ExecStartPre=${commandLine(u.execStartPre)}`] : []),
    `ExecStart=${commandLine(u.execStart)}`,
    ...(u.timeoutStartSec ? [`TimeoutStartSec=${Math.round(u.timeoutStartSec)}`] : []),
    ...(daemon ? DAEMON_SERVICE : []),
    ...(daemon ? u.readWritePaths.map((p) => `ReadWritePaths=${systemdWord(p)}`) : []),
  ]
  const names = (key: string, units: string[]) =>
    units.length ? [`${key}=${units.map(singleLine).join(' ')}`] : []
  return [
    '# Written by posthog-homelab; re-running the setup script rewrites it (the old file is kept as .bak-*).',
    '[Unit]',
    `Description=${singleLine(u.description)}`,
    ...names('After', u.after ?? ['network-online.target']),
    ...names('Wants', u.wants ?? ['network-online.target']),
    ...names('Requires', u.requires ?? []),
    '',
    '[Service]',
    ...service,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

export interface LaunchDaemon {
  label: string
  programArguments: string[]
  stdoutPath: string
  stderrPath: string
}

/**
 * A LaunchDaemon property list (/Library/LaunchDaemons, root, starts at boot without a login):
 * RunAtLoad, KeepAlive (launchd restarts frpc whenever it exits), ThrottleInterval 10 s.
 */
export function buildLaunchDaemonPlist(d: LaunchDaemon): string {
  const body = [
    key('Label'),
    str(d.label),
    key('ProgramArguments'),
    ...plistStringArray(d.programArguments),
    key('RunAtLoad'),
    '<true/>',
    key('KeepAlive'),
    '<true/>',
    key('ThrottleInterval'),
    '<integer>10</integer>',
    key('StandardOutPath'),
    str(d.stdoutPath),
    key('StandardErrorPath'),
    str(d.stderrPath),
  ]
  return plistDocument(body)
}

/** The commands that (re)load each kind of service, for running or for printing when absent. */
export function systemdCommands(unitName: string, changed: boolean): string[][] {
  return [
    ...(changed ? [['systemctl', 'daemon-reload']] : []),
    ['systemctl', 'enable', unitName],
    ['systemctl', 'restart', unitName],
  ]
}

export function launchdCommands(label: string, plistPath: string, loaded: boolean): string[][] {
  return [
    ...(loaded ? [['launchctl', 'bootout', `system/${label}`]] : []),
    ['launchctl', 'bootstrap', 'system', plistPath],
    ['launchctl', 'enable', `system/${label}`],
  ]
}

export type ServiceManager = 'systemd' | 'launchd' | 'none'

export function detectServiceManager(
  choice: string,
  platform: string = process.platform,
  systemdRunDir = '/run/systemd/system',
): ServiceManager {
  if (choice === 'systemd' || choice === 'launchd' || choice === 'none') return choice
  if (choice !== 'auto')
    throw new UsageError(`--service-manager ${choice} is not one of auto, systemd, launchd, none`)
  if (platform === 'darwin') return 'launchd'
  return fs.existsSync(systemdRunDir) ? 'systemd' : 'none'
}

export interface ApplyServiceOptions {
  manager: ServiceManager
  /** What kind of file `file` is (on `none` it decides which commands are printed). */
  kind: 'systemd' | 'launchd'
  /** `frpc.service` / `frps.service`, or the launchd label. */
  name: string
  file: string
  content: string
  /** The binary, its config or secrets changed: a running service must restart. */
  restart: boolean
  say: (line: string) => void
}

const show = (argv: string[]) => argv.join(' ')

async function runOrFail(argv: string[]): Promise<void> {
  const [bin, ...args] = argv
  const r = await run(bin!, args, { nothrow: true, timeout: '60s' })
  if (r.exitCode !== 0)
    throw new RuntimeFailure(
      `'${show(argv)}' failed: ${lastLine(r) || `exit ${r.exitCode}`}`,
      'see the service log, fix the cause and re-run',
    )
}

async function succeeds(argv: string[]): Promise<boolean> {
  const [bin, ...args] = argv
  const r = await run(bin!, args, { nothrow: true, timeout: '30s' })
  return r.exitCode === 0
}

/** Writes the unit/plist (previous one kept as a backup) and starts or restarts the service when needed. */
export async function applyService(
  o: ApplyServiceOptions,
): Promise<'started' | 'restarted' | 'unchanged' | 'printed'> {
  const written = writeFileAtomic(o.file, o.content, { mode: 0o644, backup: true })
  if (written !== 'unchanged') o.say(`${o.file} ${written}`)
  const changed = written !== 'unchanged'
  if (o.manager === 'none') {
    const cmds = o.kind === 'systemd' ? systemdCommands(o.name, true) : launchdCommands(o.name, o.file, false)
    o.say(
      `no ${o.kind === 'systemd' ? 'systemd' : 'launchd'} running here; to start the service run: ${cmds.map(show).join(' && ')}`,
    )
    return 'printed'
  }
  if (o.manager === 'systemd') {
    const active = await succeeds(['systemctl', 'is-active', '--quiet', o.name])
    const enabled = await succeeds(['systemctl', 'is-enabled', '--quiet', o.name])
    if (active && enabled && !changed && !o.restart) return 'unchanged'
    for (const cmd of systemdCommands(o.name, changed)) await runOrFail(cmd)
    o.say(`${o.name} ${active ? 'restarted' : 'started'} (systemctl status ${o.name})`)
    return active ? 'restarted' : 'started'
  }
  const loaded = await succeeds(['launchctl', 'print', `system/${o.name}`])
  if (loaded && !changed) {
    if (!o.restart) return 'unchanged'
    await runOrFail(['launchctl', 'kickstart', '-k', `system/${o.name}`])
    o.say(`${o.name} restarted (launchctl print system/${o.name})`)
    return 'restarted'
  }
  for (const cmd of launchdCommands(o.name, o.file, loaded)) await runOrFail(cmd)
  o.say(`${o.name} ${loaded ? 'reloaded' : 'started'} (launchctl print system/${o.name})`)
  return loaded ? 'restarted' : 'started'
}
