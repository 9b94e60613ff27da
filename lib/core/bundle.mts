// Bundles a step script and everything it imports into one self-contained ES module that runs
// with plain `node` (18 or later) and no node_modules: the VPS scripts and the cheap cron entry.
import path from 'node:path'
import { build } from 'esbuild'

export async function bundleEntry(entry: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    minify: false,
    legalComments: 'none',
    logLevel: 'silent',
    // Bundled CommonJS dependencies call require(); give the ES module one.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    absWorkingDir: path.resolve('.'),
  })
}
