// Free disk: thresholds, the judgement, Docker Desktop's VM disk from its sparse image, and the
// biggest consumers from `docker system df -v --format '{{json .}}'` as the fake docker prints it.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  biggestConsumers,
  DEFAULT_DISK_THRESHOLDS,
  describeSpace,
  diskStatus,
  dockerDataInfo,
  dockerDisk,
  parseHumanSize,
  parseThreshold,
  spaceInDiskImage,
} from '../../../lib/core/disk.mts'
import { FAKES, runProcess, scratchDir, writeScenario } from '../../helpers/common.ts'

const GiB = 1024 ** 3

describe('diskStatus', () => {
  it('WARNING under 15 % or 10 GiB free, CRITICAL under 5 % or 3 GiB', () => {
    const at = (free: number, total: number) => diskStatus({ free: free * GiB, total: total * GiB })
    expect(at(100, 500)).toBe('OK')
    expect(at(60, 500)).toBe('WARNING') // 12 %
    expect(at(9, 40)).toBe('WARNING') // 22 %, but under 10 GiB
    expect(at(20, 500)).toBe('CRITICAL') // 4 %
    expect(at(2.5, 20)).toBe('CRITICAL') // under 3 GiB
    expect(at(10, 60)).toBe('OK')
    expect(DEFAULT_DISK_THRESHOLDS.warning).toEqual({ percent: 15, bytes: 10 * GiB })
  })
  it('reads thresholds and describes the space', () => {
    expect(parseThreshold('15%,10GiB', 'x')).toEqual({ percent: 15, bytes: 10 * GiB })
    expect(parseThreshold('5%', 'x')).toEqual({ percent: 5, bytes: 0 })
    expect(parseThreshold('512m', 'x')).toEqual({ percent: 0, bytes: 512 * 1024 ** 2 })
    expect(() => parseThreshold('lots', '--disk-warning')).toThrow(/^--disk-warning=lots must be/)
    expect(() => parseThreshold('150%', 'x')).toThrow()
    expect(describeSpace({ free: 12.34 * GiB, total: 250 * GiB })).toBe('12.3 GiB free of 250.0 GiB (4 %)')
  })
})

describe('where Docker keeps its data', () => {
  it('a Linux engine: the filesystem of DockerRootDir; one not on this machine cannot be judged', () => {
    const dir = scratchDir('disk-')
    const here = dockerDisk(dockerDataInfo({ DockerRootDir: dir, OperatingSystem: 'Debian GNU/Linux 12' }))
    expect(here).toMatchObject({ where: dir, space: { free: expect.any(Number), total: expect.any(Number) } })
    const remote = dockerDisk(
      dockerDataInfo({ DockerRootDir: path.join(dir, 'nope'), OperatingSystem: 'Ubuntu' }),
    )
    expect(remote).toMatchObject({ unknown: expect.stringMatching(/is not on this machine/) })
  })

  it('Docker Desktop: inside the VM, from the disk image (apparent size minus what is written)', () => {
    const home = scratchDir('desktop-home-')
    const desktop = dockerDataInfo({ DockerRootDir: '/var/lib/docker', OperatingSystem: 'Docker Desktop' })
    expect(desktop.desktop).toBe(true)
    expect(dockerDisk(desktop, home)).toMatchObject({ unknown: expect.stringMatching(/Docker\.raw/) })
    const image = path.join(home, 'Library/Containers/com.docker.docker/Data/vms/0/data/Docker.raw')
    fs.mkdirSync(path.dirname(image), { recursive: true })
    fs.writeFileSync(image, Buffer.alloc(4 * 1024 ** 2, 7))
    fs.truncateSync(image, 64 * GiB)
    const space = spaceInDiskImage(image)!
    expect(space.total).toBe(64 * GiB)
    expect(space.free).toBeLessThanOrEqual(64 * GiB - 4 * 1024 ** 2)
    expect(space.free).toBeGreaterThan(60 * GiB - 1) // unless this machine itself has less free
    expect(dockerDisk(desktop, home)).toMatchObject({ where: 'Docker Desktop’s VM disk', space })
  })
})

describe('the biggest consumers', () => {
  it('reads docker’s human sizes', () => {
    expect(parseHumanSize('1.23GB')).toBe(1.23e9)
    expect(parseHumanSize('12.3kB')).toBe(12_300)
    expect(parseHumanSize('0B')).toBe(0)
    expect(parseHumanSize('2GiB')).toBe(2 * GiB)
    expect(parseHumanSize('N/A')).toBeUndefined()
  })

  it('from docker system df -v --format {{json .}}, largest first', async () => {
    const dir = scratchDir('df-')
    const scenario = path.join(dir, 'scenario.json')
    writeScenario(scenario, {
      diskUsage: {
        images: [
          { repository: 'posthog/posthog', tag: 'latest', size: 3.2e9 },
          { repository: 'clickhouse/clickhouse-server', tag: '25.6', size: 1.1e9 },
        ],
        volumes: [
          { name: 'posthog_clickhouse-data', size: 48.7e9 },
          { name: 'posthog_zookeeper-datalog', size: 25.1e9 },
          { name: 'posthog_postgres-data', size: 0.9e9 },
        ],
        buildCache: 2e9,
      },
    })
    const res = await runProcess(
      path.join(FAKES, 'docker'),
      ['system', 'df', '-v', '--format', '{{json .}}'],
      {
        env: { ...process.env, FAKE_DOCKER_SCENARIO: scenario },
        timeoutMs: 20_000,
      },
    )
    expect(res.code).toBe(0)
    expect(biggestConsumers(res.stdout, 4)).toEqual([
      { kind: 'volume', name: 'posthog_clickhouse-data', bytes: 48.7e9 },
      { kind: 'volume', name: 'posthog_zookeeper-datalog', bytes: 25.1e9 },
      { kind: 'image', name: 'posthog/posthog:latest', bytes: 3.2e9 },
      { kind: 'build cache', name: 'build cache', bytes: 2e9 },
    ])
    expect(biggestConsumers('not json')).toEqual([])
  })
})
