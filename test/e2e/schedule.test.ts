// scripts/schedule.mts as a black box, against stand-in `crontab` and `launchctl` on PATH.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findCronEntry, markerLine } from '../../lib/monitor/schedule.mts'
import { expectNoSecrets, FAKES } from '../helpers/common.ts'
import {
  type HealthServer,
  makeStackProject,
  makeToolsDir,
  ROOT,
  run,
  SECRETS,
  scratch,
  startHealthServer,
} from '../helpers/monitor-env.ts'
import { parsePlist } from '../helpers/plist.ts'

const SCHEDULE = path.join(ROOT, 'scripts/schedule.mts')
const USER_LINES = '# my own jobs\nMAILTO=me@example.com\n0 3 * * * /usr/local/bin/backup.sh\n'

let local: HealthServer
beforeAll(async () => {
  local = await startHealthServer('ok')
})
afterAll(async () => {
  await local.close()
})

function setup() {
  const tools = makeToolsDir()
  const home = scratch('home-')
  const project = makeStackProject({ env: { POSTHOG_PROXY_HTTP_PORT: String(local.port) } })
  // The scheduled run resolves STACK_DIR against the repository (its working directory).
  fs.appendFileSync(project.envFile, `STACK_DIR=${project.stackDir}\n`)
  const log = path.join(home, 'logs', 'health.log')
  // docker is found on PATH (the fake, as `docker`), as on a real machine: no DOCKER_BIN.
  const env = { ...project.env, DOCKER_BIN: '', PATH: `${FAKES}:${tools.path}`, HOME: home }
  const schedule = (args: string[]) =>
    run(SCHEDULE, ['--log-file', log, ...args], { cwd: ROOT, env, timeoutMs: 60_000 })
  return { tools, home, project, log, env, schedule }
}

describe('schedule on Linux (crontab)', () => {
  it('installs a marked entry, keeps the user’s lines, and a re-run changes nothing', async () => {
    const { tools, log, schedule, home, project, env } = setup()
    fs.writeFileSync(tools.crontabFile, USER_LINES)
    const r1 = await schedule(['--platform', 'linux'])
    expect(r1.stderr).toBe('')
    expect(r1.code).toBe(0)
    expect(r1.stdout).toContain("crontab entry 'posthog-homelab:health': installed")
    const tab = fs.readFileSync(tools.crontabFile, 'utf8')
    expect(tab.startsWith(USER_LINES)).toBe(true)
    const entry = findCronEntry(tab, 'health')!
    expect(tab).toContain(markerLine('health'))
    expect(entry).toBe(
      `*/5 * * * * cd ${ROOT} && PATH=${FAKES}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin ${process.execPath} dist/health.mjs --rotate-log ${log} --log-max-mb 5 --env-file ${project.envFile} >> ${log} 2>&1`,
    )
    expect(entry).not.toMatch(/npx|tsx/)
    expectNoSecrets(r1, SECRETS)

    // The exact scheduled command runs with cron's bare PATH and appends a report to the log
    // (docker found through the PATH the line sets).
    const command = entry.split(' ').slice(5).join(' ')
    // (asynchronously: the /_health server answers from this very process)
    await promisify(execFile)('sh', ['-c', command], {
      env: { ...env, HOMELAB_ENV_FILE: '', PATH: '/usr/bin:/bin' },
      timeout: 30_000,
    })
    expect(fs.readFileSync(log, 'utf8')).toMatch(/^POSTHOG OK - 4 checks ok$/m)

    // Re-run: same crontab bytes, no `crontab -`, bundle untouched.
    const bundle = path.join(ROOT, 'dist/health.mjs')
    const mtime = fs.statSync(bundle).mtimeMs
    fs.writeFileSync(tools.callsFile, '')
    const r2 = await schedule(['--platform', 'linux'])
    expect(r2.code).toBe(0)
    expect(r2.stdout).toContain("crontab entry 'posthog-homelab:health': unchanged")
    expect(r2.stdout).toContain('bundle dist/health.mjs: unchanged')
    expect(fs.readFileSync(tools.crontabFile, 'utf8')).toBe(tab)
    expect(fs.readFileSync(tools.callsFile, 'utf8').trim().split('\n')).toEqual(['crontab -l'])
    expect(fs.statSync(bundle).mtimeMs).toBe(mtime)

    // A new interval replaces the entry in place and keeps a backup of the previous crontab.
    const r3 = await schedule(['--platform', 'linux', '--every', '10m'])
    expect(r3.stdout).toContain("crontab entry 'posthog-homelab:health': updated")
    const updated = fs.readFileSync(tools.crontabFile, 'utf8')
    expect(findCronEntry(updated, 'health')).toMatch(/^\*\/10 \* \* \* \* /)
    expect(updated.split('\n').filter((l) => l.startsWith('# posthog-homelab:'))).toHaveLength(1)
    const dir = path.join(home, '.posthog-homelab', 'backups')
    const saved = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    expect(saved.sort()).toEqual([USER_LINES, tab].sort()) // before the install, before the update
  })

  it('uninstalls only its own entry, and again changes nothing', async () => {
    const { tools, schedule } = setup()
    fs.writeFileSync(tools.crontabFile, USER_LINES)
    expect((await schedule(['--platform', 'linux'])).code).toBe(0)
    const r1 = await schedule(['--uninstall', '--platform', 'linux'])
    expect(r1.stdout).toContain("crontab entry 'posthog-homelab:health': removed")
    expect(fs.readFileSync(tools.crontabFile, 'utf8')).toBe(USER_LINES)
    const r2 = await schedule(['--uninstall', '--platform', 'linux'])
    expect(r2.stdout).toContain("crontab entry 'posthog-homelab:health': absent")
    expect(r2.code).toBe(0)
  })

  it('works with no crontab yet, and rejects an interval cron cannot keep', async () => {
    const { tools, schedule } = setup()
    expect((await schedule(['--platform', 'linux'])).code).toBe(0)
    expect(findCronEntry(fs.readFileSync(tools.crontabFile, 'utf8'), 'health')).toBeDefined()
    const bad = await schedule(['--platform', 'linux', '--every', '7m'])
    expect(bad.code).toBe(2)
    expect(bad.stderr.trim().split('\n')).toHaveLength(1)
  })
})

describe('schedule on macOS (launchd)', () => {
  it('writes a LaunchAgent plist, bootstraps it once, and removes it', async () => {
    const { tools, schedule, log, project } = setup()
    const agents = scratch('agents-')
    const args = ['--platform', 'darwin', '--launch-agents-dir', agents]
    const r1 = await schedule(args)
    expect(r1.code).toBe(0)
    const plistPath = path.join(agents, 'com.posthog-homelab.health.plist')
    const plist = parsePlist(fs.readFileSync(plistPath, 'utf8')) as Record<string, unknown>
    expect(plist).toMatchObject({
      Label: 'com.posthog-homelab.health',
      ProgramArguments: [
        process.execPath,
        'dist/health.mjs',
        '--rotate-log',
        log,
        '--log-max-mb',
        '5',
        '--env-file',
        project.envFile,
      ],
      WorkingDirectory: ROOT,
      // launchd's own PATH (/usr/bin:/bin:/usr/sbin:/sbin) would not find Docker Desktop's docker
      EnvironmentVariables: { PATH: `${FAKES}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin` },
      StartInterval: 300,
      StandardOutPath: log,
      StandardErrorPath: log,
    })
    const uid = process.getuid!()
    const calls = () => fs.readFileSync(tools.callsFile, 'utf8').trim().split('\n')
    expect(calls()).toContain(`launchctl bootstrap gui/${uid} ${plistPath}`)

    const r2 = await schedule(args)
    expect(r2.stdout).toContain('launchd agent com.posthog-homelab.health: unchanged')
    expect(calls().filter((c) => c.includes('bootstrap'))).toHaveLength(1)

    const r3 = await schedule([...args, '--uninstall'])
    expect(r3.stdout).toContain('launchd agent com.posthog-homelab.health: removed')
    expect(calls()).toContain(`launchctl bootout gui/${uid}/com.posthog-homelab.health`)
    expect(fs.existsSync(plistPath)).toBe(false)
  })
})
