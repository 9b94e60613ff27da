// The shape of lib/ (docs/internals.md): subsystems depend on each other in one direction only,
// lib/ never imports a step script, and remote/ never imports scripts/.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '../..')

/** What each subsystem may import besides itself; anything not listed is refused. */
const ALLOWED: Record<string, string[]> = {
  core: [],
  stack: ['core'],
  tunnel: ['core'],
  monitor: ['core', 'stack'],
  ops: ['core', 'stack', 'monitor'],
}

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.mts'))
    .map((f) => path.join(dir, f))
}

/** The repository paths a file imports with a relative specifier (static or dynamic). */
function relativeImports(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8')
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!)
  return specs.map((s) => path.normalize(path.join(path.dirname(file), s)))
}

function subsystem(file: string): string | undefined {
  const [top, sub] = file.split(path.sep)
  return top === 'lib' ? sub : undefined
}

describe('architecture', () => {
  it('lib/ holds only the subsystem folders', () => {
    const entries = fs.readdirSync(path.join(ROOT, 'lib')).sort()
    expect(entries).toEqual(Object.keys(ALLOWED).sort())
  })

  it('each subsystem imports only the subsystems below it, and never a step script', () => {
    const wrong: string[] = []
    for (const file of sources('lib')) {
      const from = subsystem(file)!
      for (const target of relativeImports(file)) {
        const to = subsystem(target)
        if (to === undefined) wrong.push(`${file} imports ${target} (a step script or a file outside lib/)`)
        else if (to !== from && !ALLOWED[from]!.includes(to))
          wrong.push(`${file} imports ${target} (${from} → ${to})`)
      }
    }
    expect(wrong).toEqual([])
  })

  it('remote/ imports nothing from scripts/, and steps import no other step', () => {
    const wrong: string[] = []
    for (const dir of ['scripts', 'remote'])
      for (const file of sources(dir))
        for (const target of relativeImports(file))
          if (!target.startsWith(`lib${path.sep}`)) wrong.push(`${file} imports ${target}`)
    expect(wrong).toEqual([])
  })
})
