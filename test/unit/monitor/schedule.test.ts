import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { UsageError } from '../../../lib/core/cli.mts'
import {
  buildLaunchAgentPlist,
  cronCommand,
  cronSchedule,
  findCronEntry,
  markerLine,
  parseEvery,
  removeCronEntry,
  scheduledPath,
  shellQuote,
  stableNodePath,
  upsertCronEntry,
} from '../../../lib/monitor/schedule.mts'
import { parsePlist } from '../../helpers/plist.ts'

const USER_CRONTAB = '# my jobs\nMAILTO=me@example.com\n0 3 * * * /usr/local/bin/backup.sh\n'

describe('crontab edits', () => {
  it('adds a marked entry and keeps every other line', () => {
    const next = upsertCronEntry(USER_CRONTAB, 'health', '*/5 * * * * true')
    expect(next).toBe(`${USER_CRONTAB}${markerLine('health')}\n*/5 * * * * true\n`)
    expect(findCronEntry(next, 'health')).toBe('*/5 * * * * true')
  })

  it('replaces its own entry in place and is idempotent', () => {
    const once = upsertCronEntry(USER_CRONTAB, 'health', '*/5 * * * * a')
    const withMore = `${once}15 * * * * other\n`
    const changed = upsertCronEntry(withMore, 'health', '*/10 * * * * b')
    expect(changed).toBe(withMore.replace('*/5 * * * * a', '*/10 * * * * b'))
    expect(upsertCronEntry(changed, 'health', '*/10 * * * * b')).toBe(changed)
  })

  it('keeps entries of other ids apart and removes only its own', () => {
    const both = upsertCronEntry(upsertCronEntry('', 'health', 'h'), 'watch', 'w')
    expect(removeCronEntry(both, 'health')).toBe(`${markerLine('watch')}\nw\n`)
    expect(removeCronEntry(USER_CRONTAB, 'health')).toBe(USER_CRONTAB)
    expect(removeCronEntry(upsertCronEntry(USER_CRONTAB, 'health', 'h'), 'health')).toBe(USER_CRONTAB)
  })

  it('quotes words for sh and refuses what cron cannot hold', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node')
    expect(shellQuote("/home/o'neil/my dir")).toBe(`'/home/o'\\''neil/my dir'`)
    expect(cronCommand('/srv/ph lab', ['/usr/bin/node', 'dist/health.mjs'], '/srv/ph lab/logs/h.log')).toBe(
      "cd '/srv/ph lab' && /usr/bin/node dist/health.mjs >> '/srv/ph lab/logs/h.log' 2>&1",
    )
    expect(() => cronCommand('/srv/100%', ['node'], '/tmp/l')).toThrow(UsageError)
  })

  it('sets environment variables for the command alone, values quoted for sh', () => {
    const line = cronCommand('/srv/ph', ['/usr/bin/node', 'h.mjs'], '/tmp/l', {
      PATH: '/Users/me/.docker/bin:/usr/bin',
      DOCKER_BIN: '/opt/my docker/docker',
    })
    expect(line).toBe(
      "cd /srv/ph && PATH=/Users/me/.docker/bin:/usr/bin DOCKER_BIN='/opt/my docker/docker' /usr/bin/node h.mjs >> /tmp/l 2>&1",
    )
    expect(() => cronCommand('/srv', ['node'], '/tmp/l', { PATH: '/a%b' })).toThrow(UsageError)
    expect(() => cronCommand('/srv', ['node'], '/tmp/l', { 'A B': 'x' })).toThrow()
  })

  it('schedules node by a PATH entry that survives an upgrade, not by its versioned real path', () => {
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'node-path-')))
    try {
      const cellar = path.join(root, 'Cellar/node/23.1.0/bin')
      fs.mkdirSync(cellar, { recursive: true })
      fs.mkdirSync(path.join(root, 'bin'))
      fs.mkdirSync(path.join(root, 'other'))
      fs.mkdirSync(path.join(root, 'app/node_modules/.bin'), { recursive: true })
      const real = path.join(cellar, 'node')
      fs.writeFileSync(real, '')
      fs.symlinkSync(real, path.join(root, 'bin/node'))
      fs.symlinkSync(real, path.join(root, 'app/node_modules/.bin/node'))
      fs.writeFileSync(path.join(root, 'other/node'), '') // another node: not this one
      fs.symlinkSync(path.join(root, 'bin'), path.join(root, 'shell-1234')) // fnm-style per-shell link
      const dirs = (...d: string[]) => d.map((x) => path.join(root, x)).join(':')
      expect(stableNodePath(real, dirs('app/node_modules/.bin', 'other', 'bin'))).toBe(
        path.join(root, 'bin/node'),
      )
      expect(stableNodePath(real, dirs('shell-1234', 'bin'))).toBe(path.join(root, 'bin/node'))
      expect(stableNodePath(real, dirs('shell-1234'))).toBe(real)
      expect(stableNodePath(real, dirs('other', 'app/node_modules/.bin'))).toBe(real)
      expect(stableNodePath(real, '')).toBe(real)
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })

  it("puts docker's directory first on the scheduled PATH (cron's and launchd's own PATH lack it)", () => {
    expect(scheduledPath('/Applications/Docker.app/Contents/Resources/bin/docker')).toBe(
      '/Applications/Docker.app/Contents/Resources/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    )
    expect(scheduledPath('/usr/bin/docker')).toBe('/usr/bin:/usr/local/bin:/bin:/usr/sbin:/sbin')
    expect(scheduledPath(undefined)).toBe('/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin')
  })

  it('turns intervals into cron schedules', () => {
    expect(cronSchedule(parseEvery('5m'))).toBe('*/5 * * * *')
    expect(cronSchedule(parseEvery('1m'))).toBe('* * * * *')
    expect(cronSchedule(parseEvery('1h'))).toBe('0 * * * *')
    expect(cronSchedule(parseEvery('6h'))).toBe('0 */6 * * *')
    expect(() => parseEvery('7m')).toThrow(UsageError)
    expect(() => parseEvery('5')).toThrow(UsageError)
    expect(() => parseEvery('0m')).toThrow(UsageError)
  })
})

describe('launchd plist', () => {
  it('parses as a property list with the expected keys, escaping special characters', () => {
    const xml = buildLaunchAgentPlist({
      label: 'com.posthog-homelab.health',
      programArguments: [
        '/opt/homebrew/bin/node',
        'dist/health.mjs',
        '--rotate-log',
        '/Users/a&b/<logs>/h.log',
      ],
      workingDirectory: '/Users/a&b/posthog-homelab',
      startIntervalSeconds: 300,
      stdoutPath: '/Users/a&b/<logs>/h.log',
      stderrPath: '/Users/a&b/<logs>/h.log',
    })
    const plist = parsePlist(xml)
    expect(plist).toEqual({
      Label: 'com.posthog-homelab.health',
      ProgramArguments: [
        '/opt/homebrew/bin/node',
        'dist/health.mjs',
        '--rotate-log',
        '/Users/a&b/<logs>/h.log',
      ],
      WorkingDirectory: '/Users/a&b/posthog-homelab',
      StartInterval: 300,
      RunAtLoad: true,
      ProcessType: 'Background',
      StandardOutPath: '/Users/a&b/<logs>/h.log',
      StandardErrorPath: '/Users/a&b/<logs>/h.log',
    })
    expect(xml).toContain('<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"')
  })
})

describe('a production install (npm ci --omit=dev) can run and schedule everything', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(process.cwd(), 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>
    devDependencies: Record<string, string>
  }
  /** Every package the run-time code imports (lib/, scripts/, remote/), static or dynamic. */
  function runtimeImports(): Map<string, string> {
    const found = new Map<string, string>()
    for (const dir of ['lib', 'scripts', 'remote'])
      for (const file of fs
        .readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.mts'))) {
        const text = fs.readFileSync(path.join(dir, file), 'utf8')
        const statics = /^(?:import|export)\b[^;'"`]*?\bfrom\s+['"]([^'"./][^'"]*)['"]/gm
        const dynamics = /\bimport\(\s*['"]([^'"./][^'"]*)['"]\s*\)/g
        for (const m of [...text.matchAll(statics), ...text.matchAll(dynamics)]) {
          const spec = m[1]!
          if (spec.startsWith('node:')) continue
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
          found.set(name, `${dir}/${file}`)
        }
      }
    return found
  }

  it('every package the scripts import at run time is a dependency, not a devDependency', () => {
    const imports = runtimeImports()
    expect(imports.get('esbuild')).toBe('lib/core/bundle.mts') // schedule bundles health at run time
    for (const [name, where] of imports)
      expect(pkg.dependencies, `${name} (imported by ${where})`).toHaveProperty(name)
  })

  it('every dependency is used; no type package that nothing loads', () => {
    const imports = runtimeImports()
    // tsx is the loader the README's commands run the scripts with (npx tsx scripts/...).
    for (const name of Object.keys(pkg.dependencies))
      expect(imports.has(name) || name === 'tsx', name).toBe(true)
    // tsconfig loads only @types/node ("types": ["node"]).
    expect(Object.keys(pkg.devDependencies).filter((n) => n.startsWith('@types/'))).toEqual(['@types/node'])
  })
})
