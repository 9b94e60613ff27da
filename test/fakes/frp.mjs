// Stand-in for frp's `frpc` and `frps` binaries where the real frp 0.70.1 (../shared/tools) is
// missing, e.g. in a plain clone. Plain node, no tsx. It does only what the setup scripts call:
//
//   node frp.mjs frpc|frps --version             prints the version (env FAKE_FRP_VERSION, default 0.70.1)
//   node frp.mjs frpc|frps verify -c FILE        checks FILE like frp's verify; success prints
//                                                "frpc: the configuration file FILE syntax is ok", else exit 1
//
// verify, as frp does it: the file is read as a Go template first (`{{` starts an action), a legacy
// INI `[common]` section is refused with frp's warning, the TOML must parse, and `auth.token` and
// `auth.tokenSource` exclude each other. Unknown keys (frp parses strictly) are refused only when
// frp's full examples are at hand (../shared/fixtures/frp); without them key names are not checked.
// It runs no tunnel: the tunnel tests need the real frp and are skipped without it.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parse } from 'smol-toml'

const HERE = path.dirname(fileURLToPath(import.meta.url))
// ../shared beside the project, or HOMELAB_TEST_SHARED (the tests' way to run as a plain clone would)
const SHARED = process.env.HOMELAB_TEST_SHARED || path.resolve(HERE, '../../../shared')
const FIXTURES = process.env.FAKE_FRP_FIXTURES || path.join(SHARED, 'fixtures/frp')

/** Dotted key paths of a parsed TOML value; arrays of tables as `name[].key`. */
export function keyPaths(value, prefix = '') {
  if (Array.isArray(value))
    return value.flatMap((v) => (v && typeof v === 'object' ? keyPaths(v, `${prefix}[]`) : []))
  if (!value || typeof value !== 'object' || value instanceof Date) return []
  return Object.entries(value).flatMap(([k, v]) => {
    const key = prefix ? `${prefix}.${k}` : k
    const isTable = v && typeof v === 'object' && !(v instanceof Date)
    const nested = isTable ? keyPaths(v, key) : []
    return isTable && !Array.isArray(v) ? nested : [key, ...nested]
  })
}

/** Every key a full example names: the parsed document plus `# key = value` lines in comments. */
export function exampleKeys(text) {
  const keys = new Set(keyPaths(parse(text)))
  const arrays = new Set()
  let table = ''
  for (const line of text.split('\n')) {
    const header = /^\s*(\[\[?)\s*([\w.]+)\s*\]\]?\s*$/.exec(line)
    if (header) {
      const parts = header[2].split('.')
      let p = ''
      for (const part of parts) {
        p = p ? `${p}.${part}` : part
        if (arrays.has(p)) p = `${p}[]`
      }
      if (header[1] === '[[') {
        arrays.add(p)
        p = `${p}[]`
      }
      table = p
      continue
    }
    const commented = /^\s*#\s*([A-Za-z][\w.]*)\s*=\s*\S/.exec(line)
    if (commented) keys.add(table ? `${table}.${commented[1]}` : commented[1])
  }
  return keys
}

/** The keys frp's full example for `role` names, or undefined when the example is not at hand. */
export function knownKeys(role) {
  const file = path.join(FIXTURES, `${role}_full_example.toml`)
  return fs.existsSync(file) ? exampleKeys(fs.readFileSync(file, 'utf8')) : undefined
}

/** Checks a config like `frp verify`; returns { config } or { error } (and a warning) with frp-like text. */
export function loadConfig(role, file) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return { error: `open ${file}: no such file or directory` }
  }
  const action = text.split('\n').findIndex((l) => l.includes('{{'))
  if (action >= 0) return { error: `template: frp:${action + 1}: bad character in action` }
  if (/^\s*\[common\]\s*$/m.test(text))
    return {
      warning:
        'WARNING: ini format is deprecated and the support will be removed in the future, please use yaml/json/toml format instead!',
      error: 'legacy ini format is not supported by this stand-in',
    }
  let config
  try {
    config = parse(text)
  } catch (e) {
    return { error: `toml: ${String(e.message).split('\n')[0]}` }
  }
  const known = knownKeys(role)
  for (const key of known ? keyPaths(config) : []) {
    if (!known.has(key)) return { error: `json: unknown field "${key.split('.').at(-1).replace('[]', '')}"` }
  }
  if (config.auth?.token !== undefined && config.auth?.tokenSource !== undefined)
    return { error: 'cannot specify both auth.token and auth.tokenSource' }
  return { config }
}

function main(argv) {
  const [role, ...args] = argv
  if (role !== 'frpc' && role !== 'frps') {
    process.stderr.write('usage: frp.mjs frpc|frps verify -c FILE | --version\n')
    return 2
  }
  if (args.includes('--version') || args.includes('-v')) {
    process.stdout.write(`${process.env.FAKE_FRP_VERSION || '0.70.1'}\n`)
    return 0
  }
  const ci = args.findIndex((a) => a === '-c' || a === '--config')
  const file = ci >= 0 ? args[ci + 1] : undefined
  if (args[0] !== 'verify') {
    process.stderr.write(`${role} stand-in: only --version and verify; the tunnel needs the real frp\n`)
    return 1
  }
  if (!file) {
    process.stdout.write(`${role}: the configuration file is not specified\n`)
    return 0
  }
  const { error, warning } = loadConfig(role, file)
  if (warning) process.stdout.write(`${warning}\n`)
  if (error) {
    process.stdout.write(`${error}\n`)
    return 1
  }
  process.stdout.write(`${role}: the configuration file ${file} syntax is ok\n`)
  return 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href)
  process.exitCode = main(process.argv.slice(2))
