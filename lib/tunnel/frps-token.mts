// The shared frp token on the VPS: read once from a file or stdin (never from the command line),
// checked, and kept in <config-dir>/frps.token, which frps reads (auth.tokenSource). Without a new
// token the installed one is kept.
import fs from 'node:fs'
import { registerSecret, UsageError } from '../core/cli.mts'
import { frpTokenProblem } from '../core/env.mts'
import { type WriteResult, writeFileAtomic } from '../core/fs.mts'
import { type Owner, readableBy } from './system-user.mts'

export interface TokenSource {
  file: string | undefined
  stdin: boolean
}

function checkToken(token: string, source: string): string {
  registerSecret(token)
  const problem = frpTokenProblem(token)
  if (problem) throw new UsageError(`the token from ${source} ${problem}: use FRP_TOKEN from the home .env`)
  return token
}

function readTokenFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    throw new UsageError(`--token-file ${file} cannot be read`)
  }
}

/**
 * The new token, or undefined to keep the one installed in `tokenFile`; a UsageError when there is
 * neither. `prompt` asks for it when stdin is a terminal.
 */
export function readNewToken(
  src: TokenSource,
  tokenFile: string,
  prompt: (line: string) => void,
): string | undefined {
  if (src.file && src.stdin)
    throw new UsageError('--token-file and --token-stdin exclude each other: pick one')
  if (src.file) return checkToken(readTokenFile(src.file).trim(), src.file)
  if (src.stdin) {
    if (process.stdin.isTTY) prompt('paste the token, then press Enter and Ctrl-D')
    return checkToken(fs.readFileSync(0, 'utf8').trim(), 'stdin')
  }
  if (fs.existsSync(tokenFile)) return undefined
  throw new UsageError(
    'no token: pipe FRP_TOKEN from the home .env with --token-stdin, or pass --token-file FILE (never on the command line)',
  )
}

/** Writes the new token, or keeps the installed one (never printed); readable by `owner` only. */
export function installToken(
  tokenFile: string,
  token: string | undefined,
  owner: Owner | undefined,
  say: (line: string) => void,
): WriteResult {
  let result: WriteResult = 'unchanged'
  if (token !== undefined) {
    result = writeFileAtomic(tokenFile, `${token}\n`, { mode: owner ? 0o640 : 0o600, backup: true })
    say(result === 'unchanged' ? 'token is up to date' : `token ${result}: ${tokenFile}`)
  } else {
    registerSecret(fs.readFileSync(tokenFile, 'utf8').trim())
    say(`keeping the installed token (${tokenFile})`)
  }
  readableBy(owner, tokenFile)
  return result
}
