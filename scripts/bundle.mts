// npm run bundle: the VPS scripts as single self-contained files (dist/remote/*.mjs) that run
// with plain `node` (18 or later) on a VPS where nothing was npm-installed.
import fs from 'node:fs'
import path from 'node:path'
import { bundleEntry } from '../lib/core/bundle.mts'
import { defineScript, type FlagSpecs, RuntimeFailure, runScript, say } from '../lib/core/cli.mts'

export const REMOTE_ENTRIES = ['frps-setup', 'certbot', 'watch']

const spec = defineScript({
  usage: 'npm run bundle [-- --out-dir DIR]',
  summary: `Bundles remote/{${REMOTE_ENTRIES.join(',')}}.mts into DIR/{name}.mjs, each runnable with plain node.`,
  flags: {
    'out-dir': { type: 'string', path: true, default: 'dist/remote', help: 'where the bundles are written' },
  } satisfies FlagSpecs,
  notes: 'Copy them to the VPS with e.g.: scp dist/remote/*.mjs root@vps:',
})

await runScript('bundle', spec, async (flags) => {
  const entries = REMOTE_ENTRIES.map((name) => ({ name, entry: path.join('remote', `${name}.mts`) }))
  const missing = entries.filter((e) => !fs.existsSync(e.entry)).map((e) => e.entry)
  const outDir = flags['out-dir']!
  for (const { name, entry } of entries.filter((e) => fs.existsSync(e.entry))) {
    const outfile = path.join(outDir, `${name}.mjs`)
    try {
      await bundleEntry(entry, outfile)
    } catch (e) {
      const first = String((e as Error).message).split('\n')[0]
      throw new RuntimeFailure(
        `bundling ${entry} failed: ${first}`,
        'fix the error and re-run npm run bundle',
      )
    }
    say(`${outfile} (${Math.round(fs.statSync(outfile).size / 1024)} KiB)`)
  }
  if (missing.length > 0)
    throw new RuntimeFailure(
      `${missing.join(', ')} missing, so not every VPS script was bundled`,
      'run npm run bundle from the project root of a full, up-to-date checkout',
    )
  say(`run them on the VPS with: node ${path.join(outDir, 'frps-setup.mjs')} --help`)
  return 0
})
