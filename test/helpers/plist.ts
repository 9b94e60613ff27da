// A strict little reader for the XML property lists the toolkit writes (plutil is macOS-only):
// dict, array, key, string, integer, real, true, false. Throws on anything malformed, so a
// broken plist fails the test instead of parsing to something plausible.
type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue }

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeEntities(text: string): string {
  if (/&(?!(amp|lt|gt|quot|apos);)/.test(text)) throw new Error(`bad entity in ${JSON.stringify(text)}`)
  if (/[<>]/.test(text)) throw new Error(`unescaped markup in ${JSON.stringify(text)}`)
  return text.replace(/&(amp|lt|gt|quot|apos);/g, (_m, e: string) => ENTITIES[e]!)
}

export function parsePlist(xml: string): PlistValue {
  const body =
    /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*<!DOCTYPE plist [^>]*>\s*<plist version="1\.0">([\s\S]*)<\/plist>\s*$/.exec(
      xml,
    )
  if (!body) throw new Error('not an XML property list')
  const tokens = body[1]!.match(/<[^>]+>|[^<]+/g)!.filter((t) => t.trim() !== '')
  let i = 0
  const next = () => {
    const t = tokens[i++]
    if (t === undefined) throw new Error('unexpected end of plist')
    return t
  }
  const textUntil = (close: string): string => {
    let text = ''
    if (tokens[i] !== close) text = next()
    if (next() !== close) throw new Error(`expected ${close}`)
    return decodeEntities(text)
  }
  const value = (): PlistValue => {
    const open = next()
    switch (open) {
      case '<string>':
        return textUntil('</string>')
      case '<integer>': {
        const t = textUntil('</integer>')
        if (!/^-?\d+$/.test(t)) throw new Error(`bad integer ${t}`)
        return Number(t)
      }
      case '<real>':
        return Number(textUntil('</real>'))
      case '<true/>':
        return true
      case '<false/>':
        return false
      case '<array>': {
        const items: PlistValue[] = []
        while (tokens[i] !== '</array>') items.push(value())
        i++
        return items
      }
      case '<dict>': {
        const dict: Record<string, PlistValue> = {}
        while (tokens[i] !== '</dict>') {
          if (next() !== '<key>') throw new Error('expected <key> in dict')
          const k = textUntil('</key>')
          if (k in dict) throw new Error(`duplicate key ${k}`)
          dict[k] = value()
        }
        i++
        return dict
      }
      default:
        throw new Error(`unexpected ${open}`)
    }
  }
  const root = value()
  if (i !== tokens.length) throw new Error('trailing content after the root value')
  return root
}
