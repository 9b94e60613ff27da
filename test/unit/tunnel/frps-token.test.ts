import fs from 'node:fs'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { redact, UsageError } from '../../../lib/core/cli.mts'
import { installToken, readNewToken } from '../../../lib/tunnel/frps-token.mts'
import { scratchDir } from '../../helpers/common.ts'

const TOKEN = 'c0ffee42'.repeat(5)
let dir: string
let tokenFile: string
const said: string[] = []
const say = (line: string) => said.push(line)

beforeEach(() => {
  dir = scratchDir('frps-token-')
  tokenFile = path.join(dir, 'etc/frps.token')
  said.length = 0
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))

describe('readNewToken', () => {
  it('reads the token from a file, trimmed, and never shows it again', () => {
    const file = path.join(dir, 'token.txt')
    fs.writeFileSync(file, `${TOKEN}\n`)
    expect(readNewToken({ file, stdin: false }, tokenFile, say)).toBe(TOKEN)
    expect(redact(`token ${TOKEN}`)).toBe('token ***')
  })

  it('keeps the installed token when none is given, and refuses to go on without any', () => {
    expect(() => readNewToken({ file: undefined, stdin: false }, tokenFile, say)).toThrow(
      /no token: pipe FRP_TOKEN/,
    )
    fs.mkdirSync(path.dirname(tokenFile))
    fs.writeFileSync(tokenFile, `${TOKEN}\n`)
    expect(readNewToken({ file: undefined, stdin: false }, tokenFile, say)).toBeUndefined()
  })

  it.each([
    ['both sources', { file: '/etc/hostname', stdin: true }, /exclude each other/],
    ['a file that cannot be read', { file: '/nonexistent/token', stdin: false }, /cannot be read/],
  ])('refuses %s', (_what, src, message) => {
    expect(() => readNewToken(src, tokenFile, say)).toThrow(UsageError)
    expect(() => readNewToken(src, tokenFile, say)).toThrow(message)
  })

  it('refuses a token frp cannot take, naming where it came from', () => {
    const file = path.join(dir, 'short.txt')
    fs.writeFileSync(file, 'short')
    expect(() => readNewToken({ file, stdin: false }, tokenFile, say)).toThrow(
      new RegExp(`the token from ${file} .*use FRP_TOKEN from the home .env`),
    )
  })
})

describe('installToken', () => {
  it('writes a new token for root only (no frps user), then leaves it alone', () => {
    expect(installToken(tokenFile, TOKEN, undefined, say)).toBe('created')
    expect(fs.readFileSync(tokenFile, 'utf8')).toBe(`${TOKEN}\n`)
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600)
    expect(installToken(tokenFile, TOKEN, undefined, say)).toBe('unchanged')
    expect(said).toEqual([`token created: ${tokenFile}`, 'token is up to date'])
  })

  it('keeps the installed token without printing it', () => {
    installToken(tokenFile, TOKEN, undefined, say)
    expect(installToken(tokenFile, undefined, undefined, say)).toBe('unchanged')
    expect(said.at(-1)).toBe(`keeping the installed token (${tokenFile})`)
    expect(said.join('\n')).not.toContain(TOKEN)
  })
})
