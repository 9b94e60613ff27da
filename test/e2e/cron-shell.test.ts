// Scripts run as cron runs them: no SHLVL, only HOME and PATH, and a home whose shell startup
// files print and sleep (Debian's root .bashrc has no interactive guard; a `pyenv init` there
// costs half a second). Every external command runs without a shell, so none of those files is
// read: the output is the scripts' own, and no command waits on them. The fake docker, crontab
// and systemctl stand-ins are scripts too; they must not read them either.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findCronEntry } from '../../lib/monitor/schedule.mts'
import { FAKES, runProcess, scratchDir } from '../helpers/common.ts'
import {
  bundled,
  type HealthServer,
  makeStackProject,
  makeToolsDir,
  ROOT,
  run,
  startHealthServer,
} from '../helpers/monitor-env.ts'
import { makeProject, runScript } from '../helpers/stack-env.ts'

const NOISE = 'NOISE-FROM-A-STARTUP-FILE'

/** A home whose .bashrc, .bash_profile and .profile print, note that they ran, and sleep. */
function noisyHome(): { home: string; readMarker: () => string[] } {
  const home = scratchDir('noisy-home-')
  const marker = path.join(home, 'startup-files-read')
  for (const file of ['.bashrc', '.bash_profile', '.profile', '.bash_login']) {
    fs.writeFileSync(
      path.join(home, file),
      `echo "${NOISE} ${file}"\necho "${NOISE} ${file}" >&2\necho ${file} >> "${marker}"\nsleep 3\n`,
    )
  }
  return {
    home,
    readMarker: () => (fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim().split('\n') : []),
  }
}

/** cron's environment: HOME and PATH (and what the test needs), no SHLVL. */
function cronEnv(env: Record<string, string>): Record<string, string> {
  const clean = { ...env }
  delete clean.SHLVL
  return clean
}

let local: HealthServer
beforeAll(async () => {
  local = await startHealthServer('ok')
})
afterAll(async () => {
  await local.close()
})

describe('no command goes through a shell that reads startup files', () => {
  it('health and doctor', async () => {
    const { home, readMarker } = noisyHome()
    const p = makeStackProject()
    const env = cronEnv({ ...p.env, HOME: home, PATH: process.env.PATH! })
    const health = await run(
      await bundled(path.join(ROOT, 'scripts/health.mts')),
      ['--local-url', local.url],
      {
        cwd: p.dir,
        env,
        tsx: false,
        timeoutMs: 60_000,
      },
    )
    expect(health.code, health.stdout).toBe(0)
    expect(health.stdout.split('\n')[0]).toBe('POSTHOG OK - 4 checks ok')
    const doctor = await run(await bundled(path.join(ROOT, 'scripts/doctor.mts')), [], {
      cwd: p.dir,
      env,
      tsx: false,
      timeoutMs: 60_000,
    })
    expect(doctor.stdout.trim()).toBe('doctor: nothing wrong found')
    for (const r of [health, doctor]) expect(r.output).not.toContain(NOISE)
    expect(p.calls().length).toBeGreaterThan(5) // the docker calls did happen
    expect(readMarker()).toEqual([])
  })

  it('down', async () => {
    const { home, readMarker } = noisyHome()
    const p = makeProject()
    fs.mkdirSync(p.stackDir, { recursive: true })
    fs.writeFileSync(path.join(p.stackDir, 'docker-compose.yml'), 'services: {}\n')
    p.scenario({ services: { db: { state: 'running' } } })
    const res = await runScript('down', [], p, { HOME: home })
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout + res.stderr).not.toContain(NOISE)
    expect(p.calls().filter((c) => c[1] === 'down')).toHaveLength(1)
    expect(readMarker()).toEqual([])
    p.cleanup()
  })

  it('schedule (crontab through its stand-in) and the scheduled run itself', async () => {
    const { home, readMarker } = noisyHome()
    const tools = makeToolsDir()
    const p = makeStackProject({ env: { POSTHOG_PROXY_HTTP_PORT: String(local.port) } })
    fs.appendFileSync(p.envFile, `STACK_DIR=${p.stackDir}\n`)
    const log = path.join(home, 'health.log')
    const env = cronEnv({ ...p.env, DOCKER_BIN: '', HOME: home, PATH: `${FAKES}:${tools.path}` })
    const r = await run(path.join(ROOT, 'scripts/schedule.mts'), ['--platform', 'linux', '--log-file', log], {
      cwd: ROOT,
      env,
      timeoutMs: 60_000,
    })
    expect(r.code, r.stderr).toBe(0)
    expect(r.output).not.toContain(NOISE)
    const entry = findCronEntry(fs.readFileSync(tools.crontabFile, 'utf8'), 'health')!
    // cron runs the line with sh -c, as here: the report, and nothing from a startup file.
    const scheduled = await runProcess('sh', ['-c', entry.split(' ').slice(5).join(' ')], {
      env: { ...env, HOMELAB_ENV_FILE: '', PATH: '/usr/bin:/bin' },
      timeoutMs: 60_000,
    })
    expect(scheduled.code).toBe(0)
    const logged = fs.readFileSync(log, 'utf8')
    expect(logged).toMatch(/^POSTHOG OK - 4 checks ok$/m)
    expect(logged).not.toContain(NOISE)
    expect(readMarker()).toEqual([])
  })
})
