// Runs every benchmark in bench/ one after the other (npm run bench).
import fs from 'node:fs'
import path from 'node:path'
import { run } from '../lib/core/exec.mts'

const dir = path.dirname(new URL(import.meta.url).pathname)
const only = process.argv.slice(2)
const benches = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.mts') && f !== 'run.mts')
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
let failed = 0
for (const file of benches) {
  process.stdout.write(`\n== bench/${file}\n`)
  const res = await run(process.execPath, ['--import', 'tsx', path.join(dir, file)], {
    inherit: true,
    nothrow: true,
    timeout: '15m',
  })
  if (!res.ok) failed++
}
process.exitCode = failed ? 1 : 0
