import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RuntimeFailure } from '../../../lib/core/cli.mts'
import { openFirewall, ufwRules, ufwState } from '../../../lib/tunnel/ufw.mts'
import { scratchDir } from '../../helpers/common.ts'

const result = (exitCode: number, stdout = '', stderr = '') => ({ exitCode, stdout, stderr })

describe('ufwState', () => {
  it('tells missing, inactive and active ufw apart', () => {
    expect(ufwState(result(127, '', 'ufw: command not found'))).toBe('missing')
    expect(ufwState(result(1, '', 'sudo: ufw: No such file or directory'))).toBe('missing')
    expect(ufwState(result(0, 'Status: inactive\n'))).toBe('inactive')
    expect(ufwState(result(0, 'Status: active\n\nTo Action From\n'))).toBe('active')
  })

  it("opens frpc's port, http and https", () => {
    expect(ufwRules(7000)).toEqual(['7000/tcp', '80/tcp', '443/tcp'])
  })
})

describe('openFirewall', () => {
  let dir: string
  const said: string[] = []
  /** A ufw that records its arguments, says STATUS and fails `allow` when FAIL is set. */
  const fakeUfw = (name: string, status: string, fail = false) => {
    const file = path.join(dir, name)
    fs.writeFileSync(
      file,
      `#!/bin/sh\necho "$*" >> "${file}.log"\n[ "$1" = status ] && { echo "${status}"; exit 0; }\n${fail ? 'echo "ERROR: need root" >&2; exit 1' : 'echo "Rule added"'}\n`,
      { mode: 0o755 },
    )
    return file
  }
  const calls = (file: string) => fs.readFileSync(`${file}.log`, 'utf8').trim().split('\n')

  beforeAll(() => {
    dir = scratchDir('ufw-')
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('allows the rules when ufw is active', async () => {
    const ufw = fakeUfw('active', 'Status: active')
    await openFirewall(ufw, 7001, (l) => said.push(l))
    expect(calls(ufw)).toEqual(['status', 'allow 7001/tcp', 'allow 80/tcp', 'allow 443/tcp'])
    expect(said.at(-1)).toBe('ufw is active: allowed 7001/tcp, 80/tcp, 443/tcp')
  })

  it("changes nothing when ufw is inactive or missing, and names the provider's firewall", async () => {
    const ufw = fakeUfw('inactive', 'Status: inactive')
    await openFirewall(ufw, 7000, (l) => said.push(l))
    expect(calls(ufw)).toEqual(['status'])
    expect(said.at(-1)).toMatch(
      /^ufw is not active: nothing to open \(your provider's firewall must allow 7000/,
    )
    await openFirewall(path.join(dir, 'no-ufw'), 7000, (l) => said.push(l))
    expect(said.at(-1)).toMatch(
      /^ufw is not installed: make sure your provider's firewall allows 7000, 80 and 443/,
    )
  })

  it('fails in one line when a rule cannot be added', async () => {
    const ufw = fakeUfw('failing', 'Status: active', true)
    const attempt = openFirewall(ufw, 7000, () => {})
    await expect(attempt).rejects.toBeInstanceOf(RuntimeFailure)
    await expect(attempt).rejects.toThrow("'ufw allow 7000/tcp' failed: ERROR: need root")
  })
})
