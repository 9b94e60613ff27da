// The README and docs/ show only what exists: every `npm run X` is a package.json script, every step
// script has one, every scripts/ or remote/ path they name is a file, and every relative link (and
// its #anchor) leads somewhere.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '../..')

interface Doc {
  /** Path relative to the project root, e.g. `docs/stack.md`. */
  file: string
  text: string
  /** The text outside fenced code blocks (links and headings live there). */
  prose: string
}

function readDocs(): Doc[] {
  const docsDir = path.join(ROOT, 'docs')
  const files = [
    'README.md',
    ...fs
      .readdirSync(docsDir)
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => `docs/${f}`),
  ]
  return files.map((file) => {
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8')
    return { file, text, prose: withoutCodeBlocks(text) }
  })
}

/** The text with fenced code blocks blanked out (line count kept). */
function withoutCodeBlocks(text: string): string {
  let inFence = false
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) {
        inFence = !inFence
        return ''
      }
      return inFence ? '' : line
    })
    .join('\n')
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>
}
const docs = readDocs()

/** The script names after `npm run` (flags such as --silent skipped). */
function npmRunNames(text: string): string[] {
  return [...text.matchAll(/\bnpm run((?:\s+--?[\w-]+)*)\s+([A-Za-z][\w:.-]*)/g)].map((m) => m[2]!)
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

function anchorsOf(doc: Doc): Set<string> {
  const seen = new Map<string, number>()
  const anchors = new Set<string>()
  for (const m of doc.prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1]!)
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    anchors.add(n === 0 ? base : `${base}-${n}`)
  }
  return anchors
}

/** Relative link targets (`[text](target)`), without external URLs. */
function relativeLinks(doc: Doc): string[] {
  return [...doc.prose.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t))
}

describe('README and docs/', () => {
  it('exist: the README and the five reference pages', () => {
    expect(docs.map((d) => d.file)).toEqual(
      expect.arrayContaining([
        'README.md',
        'docs/stack.md',
        'docs/monitoring.md',
        'docs/public.md',
        'docs/operations.md',
        'docs/internals.md',
      ]),
    )
  })

  it('show only npm run entries that package.json has', () => {
    const missing: string[] = []
    for (const doc of docs)
      for (const name of npmRunNames(doc.text))
        if (!(name in pkg.scripts)) missing.push(`${doc.file}: npm run ${name}`)
    expect(missing).toEqual([])
    // The check itself finds the entries it is meant to find.
    expect(npmRunNames('npm run --silent health; npm run doctor -- --fix')).toEqual(['health', 'doctor'])
  })

  it('every step script in scripts/ has a package.json entry that runs it', () => {
    const steps = fs.readdirSync(path.join(ROOT, 'scripts')).filter((f) => f.endsWith('.mts'))
    expect(steps.length).toBeGreaterThan(0)
    const commands = Object.values(pkg.scripts)
    const without = steps.filter(
      (f) => !commands.some((c) => new RegExp(`(^|\\s)scripts/${f.replace('.', '\\.')}(\\s|$)`).test(c)),
    )
    expect(without).toEqual([])
  })

  it('name only scripts/ and remote/ files that exist', () => {
    const missing: string[] = []
    for (const doc of docs)
      for (const m of doc.text.matchAll(/(?<![\w/.-])(scripts|remote)\/[\w./-]*\.mts\b/g))
        if (!fs.existsSync(path.join(ROOT, m[0]))) missing.push(`${doc.file}: ${m[0]}`)
    expect(missing).toEqual([])
  })

  it('link only to files (and headings) that exist', () => {
    const byFile = new Map(docs.map((d) => [path.join(ROOT, d.file), d]))
    const broken: string[] = []
    for (const doc of docs)
      for (const link of relativeLinks(doc)) {
        const [target = '', anchor] = link.split('#')
        const file = target ? path.resolve(ROOT, path.dirname(doc.file), target) : path.join(ROOT, doc.file)
        if (!fs.existsSync(file)) {
          broken.push(`${doc.file}: ${link} (no such file)`)
          continue
        }
        const linked = byFile.get(file)
        if (anchor && linked && !anchorsOf(linked).has(anchor))
          broken.push(`${doc.file}: ${link} (no such heading)`)
      }
    expect(broken).toEqual([])
  })
})
