// scripts/boot.mts as a black box, against the recording stand-ins `schedule` is tested with
// (launchctl, and a systemctl that also keeps which units are enabled): the unit and the plist
// it writes, what it asks systemd and launchd to do, re-runs, --uninstall, bad input, and the
// command the job runs at boot.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { BOOT_LABEL, BOOT_UNIT, ownerName } from '../../lib/ops/boot.mts'
import { expectNoSecrets, FAKES, runProcess, writeEnvFile } from '../helpers/common.ts'
import { makeStackProject, makeToolsDir, ROOT, run, SECRETS, scratch } from '../helpers/monitor-env.ts'
import { parsePlist } from '../helpers/plist.ts'

const BOOT = path.join(ROOT, 'scripts/boot.mts')
const LOADER = path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')

/** makeToolsDir's stand-ins, with a systemctl that records every call and remembers enabled units. */
function tools() {
  const t = makeToolsDir()
  const enabled = path.join(t.bin, 'systemd-enabled')
  fs.writeFileSync(
    path.join(t.bin, 'systemctl'),
    [
      '#!/usr/bin/env bash',
      `echo "systemctl $*" >> ${JSON.stringify(t.callsFile)}`,
      `enabled=${JSON.stringify(enabled)}`,
      'for unit; do :; done # the last argument',
      'case "$1" in',
      '  daemon-reload) ;;',
      '  is-enabled) grep -qxF "$unit" "$enabled" 2>/dev/null || { [ "$2" = --quiet ] || echo disabled; exit 1; } ;;',
      '  enable) echo "Created symlink /etc/systemd/system/multi-user.target.wants/$unit" >&2; echo "$unit" >> "$enabled" ;;',
      '  disable) grep -vxF "$unit" "$enabled" > "$enabled.tmp" 2>/dev/null; mv "$enabled.tmp" "$enabled" ;;',
      '  *) echo "Unknown command verb $1." >&2; exit 1 ;;',
      'esac',
    ].join('\n'),
    { mode: 0o755 },
  )
  return {
    ...t,
    calls: () => (fs.existsSync(t.callsFile) ? fs.readFileSync(t.callsFile, 'utf8').trim().split('\n') : []),
  }
}

function setup() {
  const t = tools()
  const home = scratch('home-')
  const project = makeStackProject()
  // docker is found on PATH (the fake, as `docker`), as on a real machine: no DOCKER_BIN.
  const env = { ...project.env, DOCKER_BIN: '', PATH: `${FAKES}:${t.path}`, HOME: home }
  const boot = (args: string[], extra: Record<string, string> = {}) =>
    run(BOOT, args, { cwd: ROOT, env: { ...env, ...extra }, timeoutMs: 60_000 })
  return { t, home, project, env, boot }
}

const JOB_PATH = `${FAKES}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`

describe('boot on Linux (systemd)', () => {
  it('installs an enabled oneshot unit after docker.service, and a re-run changes nothing', async () => {
    const { t, project, boot } = setup()
    const unitDir = scratch('units-')
    const args = ['--platform', 'linux', '--unit-dir', unitDir]
    const r1 = await boot(args)
    expectNoSecrets(r1, SECRETS)
    expect(r1.stderr).toBe('')
    expect(r1.code).toBe(0)
    const file = path.join(unitDir, BOOT_UNIT)
    expect(r1.stdout).toContain(`systemd unit ${BOOT_UNIT}: created (${file})`)
    expect(fs.statSync(file).mode & 0o777).toBe(0o644)
    const unit = fs.readFileSync(file, 'utf8')
    const owner = ownerName(fs.statSync(ROOT).uid, fs.readFileSync('/etc/passwd', 'utf8'))
    const execStart = [
      process.execPath,
      '--import',
      LOADER,
      path.join(ROOT, 'scripts/up.mts'),
      '--env-file',
      project.envFile,
    ]
    for (const line of [
      '[Unit]',
      'After=docker.service network-online.target',
      'Wants=network-online.target',
      'Requires=docker.service',
      'Type=oneshot',
      'RemainAfterExit=yes',
      `User=${owner}`,
      `WorkingDirectory=${ROOT}`,
      `Environment="PATH=${JOB_PATH}"`,
      `ExecStart=${execStart.join(' ')}`,
      'TimeoutStartSec=5400',
      'WantedBy=multi-user.target',
    ])
      expect(unit.split('\n')).toContain(line)
    // `up` needs the user's rights (the checkout, the docker socket): no sandbox, no Group= guess,
    // and no restart loop of a oneshot job.
    expect(unit).not.toMatch(/^(ProtectHome|ProtectSystem|Restart|Group)=/m)
    expect(t.calls()).toEqual([
      'systemctl daemon-reload',
      `systemctl is-enabled --quiet ${BOOT_UNIT}`,
      `systemctl enable ${BOOT_UNIT}`,
    ])

    // The command the unit runs starts from anywhere (absolute node, loader and script).
    const help = await runProcess(execStart[0]!, [...execStart.slice(1, 4), '--help'], {
      cwd: '/',
      timeoutMs: 30_000,
    })
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^Usage: npx tsx scripts\/up\.mts/)

    // Re-run: same bytes, same mtime, nothing reloaded or enabled.
    const mtime = fs.statSync(file).mtimeMs
    fs.writeFileSync(t.callsFile, '')
    const r2 = await boot(args)
    expect(r2.code).toBe(0)
    expect(r2.stdout).toContain(`systemd unit ${BOOT_UNIT}: unchanged`)
    expect(fs.readFileSync(file, 'utf8')).toBe(unit)
    expect(fs.statSync(file).mtimeMs).toBe(mtime)
    expect(t.calls()).toEqual([`systemctl is-enabled --quiet ${BOOT_UNIT}`])

    // A change rewrites it (the previous file kept as a backup) and reloads systemd.
    const r3 = await boot([...args, '--start-timeout', '2h', '--docker-unit', 'snap.docker.dockerd.service'])
    expect(r3.code).toBe(0)
    expect(r3.stdout).toContain(`systemd unit ${BOOT_UNIT}: updated`)
    const updated = fs.readFileSync(file, 'utf8')
    expect(updated).toContain('TimeoutStartSec=7200')
    expect(updated).toContain('Requires=snap.docker.dockerd.service')
    expect(fs.readdirSync(unitDir).filter((f) => f.startsWith(`${BOOT_UNIT}.bak-`))).toHaveLength(1)
    expect(t.calls()).toContain('systemctl daemon-reload')
  })

  it('uninstalls the unit, and again changes nothing', async () => {
    const { t, boot } = setup()
    const unitDir = scratch('units-')
    const args = ['--platform', 'linux', '--unit-dir', unitDir]
    expect((await boot(args)).code).toBe(0)
    fs.writeFileSync(t.callsFile, '')
    const r1 = await boot([...args, '--uninstall'])
    expect(r1.code).toBe(0)
    expect(r1.stdout).toContain(`systemd unit ${BOOT_UNIT}: removed`)
    expect(fs.existsSync(path.join(unitDir, BOOT_UNIT))).toBe(false)
    expect(t.calls()).toEqual([
      `systemctl is-enabled --quiet ${BOOT_UNIT}`,
      `systemctl disable ${BOOT_UNIT}`,
      'systemctl daemon-reload',
    ])
    fs.writeFileSync(t.callsFile, '')
    const r2 = await boot([...args, '--uninstall'])
    expect(r2.code).toBe(0)
    expect(r2.stdout).toContain(`systemd unit ${BOOT_UNIT}: absent`)
    expect(t.calls()).toEqual([`systemctl is-enabled --quiet ${BOOT_UNIT}`])
  })

  it('bad input is exit 2 with one line, before anything is written', async () => {
    const { t, project, boot } = setup()
    const unitDir = scratch('units-')
    const cases: [string[], RegExp][] = [
      [['--platform', 'bsd'], /--platform=bsd must be darwin or linux/],
      [['--platform', 'linux', '--docker-unit', 'docker; rm -rf /'], /--docker-unit=.* must be a unit name/],
      [['--platform', 'linux', '--start-timeout', 'soon'], /--start-timeout/],
      [['--platform', 'linux', '--bogus'], /bogus/],
    ]
    for (const [args, message] of cases) {
      const r = await boot([...args, '--unit-dir', unitDir])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
      expect(r.stderr).toMatch(message)
    }
    // a .env the job could not start with is refused now, not found out at the next boot
    writeEnvFile(project.envFile, { POSTHOG_PROXY_HTTP_PORT: 'eighty' })
    const broken = await boot(['--platform', 'linux', '--unit-dir', unitDir])
    expect(broken.code).toBe(2)
    expect(broken.stderr.trim().split('\n')).toHaveLength(1)
    expect(fs.readdirSync(unitDir)).toEqual([])
    expect(t.calls()).toEqual([])
  })

  it.skipIf(process.getuid?.() === 0)(
    'a unit folder it may not write: exit 1, says to use sudo',
    async () => {
      const { t, boot } = setup()
      const unitDir = scratch('units-')
      fs.chmodSync(unitDir, 0o555)
      const r = await boot(['--platform', 'linux', '--unit-dir', unitDir])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/cannot write .* \(permission denied\).*sudo env "PATH=\$PATH" npm run boot/)
      expect(t.calls()).toEqual([])
    },
  )

  it('a unit folder that cannot exist: exit 1 naming why, nothing asked of systemd', async () => {
    const { t, boot } = setup()
    const notADir = path.join(scratch('units-'), 'a-file')
    fs.writeFileSync(notADir, '')
    const r = await boot(['--platform', 'linux', '--unit-dir', path.join(notADir, 'system')])
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^boot: error: cannot write .* \(ENOTDIR\)/),
    ])
    expect(t.calls()).toEqual([])
  })
})

describe('boot on macOS (launchd)', () => {
  it('writes a RunAtLoad LaunchAgent without loading it now, and removes it', async () => {
    const { t, project, boot, home } = setup()
    const agents = scratch('agents-')
    const log = path.join(home, 'boot.log')
    const args = ['--platform', 'darwin', '--launch-agents-dir', agents, '--log-file', log]
    const r1 = await boot(args)
    expectNoSecrets(r1, SECRETS)
    expect(r1.code).toBe(0)
    const file = path.join(agents, `${BOOT_LABEL}.plist`)
    expect(r1.stdout).toContain(`launchd agent ${BOOT_LABEL}: created (${file})`)
    expect(r1.stdout).toMatch(/automatic login.*Start Docker Desktop when you sign in/)
    const plist = parsePlist(fs.readFileSync(file, 'utf8')) as Record<string, unknown>
    expect(plist).toEqual({
      Label: BOOT_LABEL,
      ProgramArguments: [
        process.execPath,
        '--import',
        LOADER,
        path.join(ROOT, 'scripts/boot.mts'),
        '--run',
        '--docker-wait',
        '10m',
        '--env-file',
        project.envFile,
      ],
      WorkingDirectory: ROOT,
      RunAtLoad: true, // at login; no StartInterval, no KeepAlive: once per login
      StandardOutPath: log,
      StandardErrorPath: log,
      EnvironmentVariables: { PATH: JOB_PATH },
    })
    // Loading a RunAtLoad agent would run `up` right away: launchd loads it at the next login.
    expect(t.calls()).toEqual([])

    const r2 = await boot(args)
    expect(r2.stdout).toContain(`launchd agent ${BOOT_LABEL}: unchanged`)

    // Loaded (after a login): --uninstall boots it out and removes the file.
    fs.appendFileSync(path.join(t.bin, 'launchd-loaded'), `gui/${process.getuid!()}/${BOOT_LABEL}\n`)
    const r3 = await boot([...args, '--uninstall'])
    expect(r3.code).toBe(0)
    expect(r3.stdout).toContain(`launchd agent ${BOOT_LABEL}: removed`)
    expect(t.calls()).toContain(`launchctl bootout gui/${process.getuid!()}/${BOOT_LABEL}`)
    expect(fs.existsSync(file)).toBe(false)
    const r4 = await boot([...args, '--uninstall'])
    expect(r4.stdout).toContain(`launchd agent ${BOOT_LABEL}: absent`)
  })

  it('at login the job waits for Docker Desktop, then runs up with its exit code', async () => {
    const { project, env } = setup()
    // Docker Desktop still starting for the first two calls.
    project.scenario({
      rules: [
        {
          match: '^info',
          times: 2,
          exitCode: 1,
          stderr:
            'Cannot connect to the Docker daemon at unix:///Users/me/.docker/run/docker.sock. Is the docker daemon running?',
        },
      ],
    })
    // up refuses this .env at once (exit 2): enough to see that it ran, with the job's env file.
    writeEnvFile(project.envFile, { POSTHOG_PROXY_HTTP_PORT: 'eighty' })
    const argv = [LOADER, BOOT, '--run', '--docker-wait', '20s', '--env-file', project.envFile]
    const r = await runProcess(process.execPath, ['--import', ...argv], {
      cwd: ROOT,
      env: { ...process.env, ...env, HOMELAB_ENV_FILE: '' },
      timeoutMs: 60_000,
    })
    expect(r.stdout).toMatch(/boot: waiting for Docker \(up to 20s\)/)
    expect(r.stdout).toMatch(/boot: Docker is up; running up/)
    expect(r.stderr).toMatch(/^up: error: .*POSTHOG_PROXY_HTTP_PORT/m)
    expect(r.stdout).toMatch(/boot: up finished \(exit 2\)/)
    expect(r.code).toBe(2)
    expect(project.calls().filter((c) => c.startsWith('info'))).toHaveLength(3)
  })

  it('at login, a Docker that never answers ends the job with one line (exit 1), up not run', async () => {
    const { project, env } = setup()
    project.scenario({ daemon: false })
    const r = await run(BOOT, ['--run', '--docker-wait', '1s'], { cwd: ROOT, env, timeoutMs: 60_000 })
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^boot: error: Docker did not answer within 1s; PostHog was not started/),
    ])
    expect(r.stdout).not.toMatch(/running up/)
  })
})
