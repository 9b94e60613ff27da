import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { registerSecret } from '../../../lib/core/cli.mts'
import { DEFAULT_DISK_THRESHOLDS } from '../../../lib/core/disk.mts'
import {
  diskFindings,
  doctorReading,
  formatFindings,
  memoryFindings,
  parseDockerSize,
  stateFindings,
} from '../../../lib/monitor/doctor.mts'
import { type Finding, redactEvidence } from '../../../lib/monitor/doctor-finding.mts'
import { planFixes } from '../../../lib/monitor/doctor-fix.mts'
import { logFindings, parseComposeLogs, readTail } from '../../../lib/monitor/doctor-logs.mts'
import { scratchDir } from '../../helpers/common.ts'

describe('doctor analysis', () => {
  it('reads docker compose logs lines', () => {
    const out = [
      'plugins-1           | Error: Region is missing',
      'ingestion-general-1 | error: column posthog_person.last_seen_at does not exist',
      'web-1  |',
      'not a log line',
    ].join('\n')
    expect(parseComposeLogs(out)).toEqual([
      { service: 'plugins', line: 'Error: Region is missing' },
      { service: 'ingestion-general', line: 'error: column posthog_person.last_seen_at does not exist' },
      { service: 'web', line: '' },
    ])
  })

  it('merges repeated matches and keeps the latest evidence', () => {
    const f = logFindings([
      { service: 'plugins', line: 'connect ECONNREFUSED 127.0.0.1:6379 (1)' },
      { service: 'plugins', line: 'connect ECONNREFUSED 127.0.0.1:6379 (2)' },
      { service: 'recording-api', line: 'connect ECONNREFUSED 127.0.0.1:6379' },
    ])
    expect(f.map((x) => [x.id, x.service, x.count])).toEqual([
      ['redis-localhost', 'plugins', 2],
      ['redis-localhost', 'recording-api', 1],
    ])
    expect(f[0]!.evidence).toBe('plugins | connect ECONNREFUSED 127.0.0.1:6379 (2)')
  })

  it('redacts registered secrets and anything that looks like one', () => {
    const secret = 'Zq9'.repeat(20)
    registerSecret(secret)
    expect(redactEvidence(`SECRET_KEY=${secret} boot`)).not.toContain(secret)
    expect(redactEvidence('auth token=abcdef123456 rejected')).toBe('auth token=*** rejected')
    expect(redactEvidence('postgres://posthog:hunter22@db:5432/posthog')).toBe(
      'postgres://***@db:5432/posthog',
    )
    expect(redactEvidence('"password": "s3cr3t!"')).toBe('"password": "***"')
  })

  it('names OOM kills and restarting workers from container states', () => {
    const base = {
      exitCode: 0,
      health: '',
      restartCount: 0,
      oomKilled: false,
      id: 'x',
      name: 'n',
      state: 'running',
    }
    const f = stateFindings(
      [
        { ...base, service: 'elasticsearch', state: 'exited', exitCode: 137, oomKilled: true },
        { ...base, service: 'worker', restartCount: 3 },
        { ...base, service: 'web', state: 'exited', exitCode: 1 },
        { ...base, service: 'kafka-init', state: 'exited', exitCode: 0 },
      ],
      { expected: ['elasticsearch', 'worker', 'web', 'kafka-init', 'capture'], oneShot: ['kafka-init'] },
    )
    expect(f.map((x) => [x.id, x.service, x.safe])).toEqual([
      ['oom-killed', 'elasticsearch', false],
      ['worker-restarting', 'worker', false],
      ['exited', 'web', true],
      ['missing', 'capture', true],
    ])
    expect(f[0]!.evidence).toBe('elasticsearch exited with code 137 (OOMKilled)')
  })

  it('compares memory with limits and with what Docker has', () => {
    expect(parseDockerSize('1.5GiB')).toBe(1.5 * 1024 ** 3)
    expect(parseDockerSize('512MiB')).toBe(512 * 1024 ** 2)
    expect(parseDockerSize('1.2kB')).toBe(1200)
    const total = 8 * 1024 ** 3
    const f = memoryFindings(
      [
        { Name: 'posthog-web-1', MemUsage: '1.45GiB / 1.5GiB' },
        { Name: 'posthog-clickhouse-1', MemUsage: '1GiB / 2GiB' },
        { Name: 'posthog-kafka-1', MemUsage: '5GiB / 7.9GiB' }, // no own limit: the VM's size
      ],
      total,
    )
    expect(f.map((x) => [x.id, x.service])).toEqual([
      ['memory-near-limit', 'web'],
      ['memory-total', 'docker'],
    ])
  })

  it('plans safe fixes in order: migrations, then restarts, then starts', () => {
    const f = (service: string, action: Finding['action'], safe = true): Finding => ({
      id: 'x',
      service,
      evidence: '',
      cause: '',
      fix: '',
      safe,
      action,
      count: 1,
    })
    const steps = planFixes([
      f('capture', 'start'),
      f('plugins', 'migrate'),
      f('db', 'restart'),
      f('ingestion-general', 'migrate'),
      f('plugins', 'migrate'),
      f('proxy', undefined, false),
    ])
    expect(steps.map((s) => s.label)).toEqual([
      'docker compose exec -T web ./bin/migrate',
      'docker compose restart plugins db ingestion-general',
      'docker compose up -d capture',
    ])
  })
})

describe('doctor report', () => {
  const finding = (fix: string): Finding => ({
    id: 'x',
    service: 'plugins',
    evidence: 'plugins | boom',
    cause: 'it broke',
    fix,
    safe: false,
    count: 2,
  })

  it('says where and under which project name the docker compose fixes run', () => {
    const text = formatFindings([finding('docker compose restart plugins')], '/srv/homelab/stack')
    expect(text.split('\n')).toEqual([
      'doctor: 1 problem found',
      '',
      '[plugins] it broke',
      '  evidence: plugins | boom (2 lines)',
      '  fix: docker compose restart plugins',
      '',
      "run the docker compose commands above in the stack's folder, whose .env names the project and its files: cd /srv/homelab/stack && docker compose ...",
    ])
    expect(formatFindings([finding('set SES_REGION in .env')], '/srv/homelab/stack')).not.toContain(
      '-p posthog',
    )
    expect(formatFindings([finding('docker compose restart plugins')])).not.toContain('-p posthog')
  })
})

describe('reading logs', () => {
  it('reads only the end of a file, a line cut at its start included', () => {
    const dir = scratchDir('tail-')
    const file = path.join(dir, 'x.log')
    fs.writeFileSync(file, `${'a'.repeat(100)}\nline two\nline three\n`)
    expect(readTail(file, 1000)).toBe(`${'a'.repeat(100)}\nline two\nline three\n`)
    expect(readTail(file, 15)).toBe('two\nline three\n')
    expect(readTail(path.join(dir, 'missing.log'))).toBeUndefined()
    // One line longer than the window (a sparse file's NULs, then the line): its end is found.
    const sparse = path.join(dir, 'sparse.log')
    fs.writeFileSync(sparse, '')
    fs.truncateSync(sparse, 1024 * 1024)
    fs.appendFileSync(sparse, 'upstream prematurely closed connection\n')
    const tail = readTail(sparse, 4096)!
    expect(tail).toHaveLength(4096)
    expect(tail.endsWith('upstream prematurely closed connection\n')).toBe(true)
  })
})

describe('low disk', () => {
  it('names the biggest consumers', () => {
    const df = JSON.stringify({
      Images: [{ Repository: 'posthog/posthog', Tag: 'latest', Size: '3.2GB' }],
      Volumes: [{ Name: 'posthog_clickhouse-data', Size: '48.7GB' }],
      BuildCache: [],
    })
    const [f] = diskFindings(
      [{ where: '/var/lib/docker', space: { free: 2 * 1024 ** 3, total: 100 * 1024 ** 3 } }],
      df,
    )
    expect(f).toMatchObject({ id: 'disk-low', service: 'disk', safe: false })
    expect(f!.evidence).toBe('2.0 GiB free of 100.0 GiB (2 %) on /var/lib/docker')
    expect(f!.cause).toMatch(
      /the biggest: volume posthog_clickhouse-data 45\.4 GiB, image posthog\/posthog:latest 3\.0 GiB/,
    )
  })
})

describe('what the flags say doctor reads', () => {
  const flags = { since: '1h', tail: '300', 'disk-warning': '15%,10GiB', 'disk-critical': '5%,3GiB' }

  it('takes a duration or an RFC 3339 time for --since, a whole number for --tail', () => {
    expect(doctorReading(flags)).toEqual({ since: '1h', tail: 300, diskThresholds: DEFAULT_DISK_THRESHOLDS })
    expect(doctorReading({ ...flags, since: '2026-11-25T12:00:00.5+01:00' }).since).toBe(
      '2026-11-25T12:00:00.5+01:00',
    )
    expect(() => doctorReading({ ...flags, tail: '0' })).toThrow('--tail=0 must be a whole number above 0')
    expect(() => doctorReading({ ...flags, tail: '1.5' })).toThrow(/^--tail=1.5/)
    expect(() => doctorReading({ ...flags, since: 'yesterday' })).toThrow(
      /^--since=yesterday must be a duration/,
    )
    expect(() => doctorReading({ ...flags, 'disk-critical': 'x' })).toThrow(/--disk-critical/)
  })
})
