// nginx configuration as a small typed tree (directives, blocks, comments, blank lines) and the
// one function that renders it. Every word is checked on the way out, so no value can close a
// block or add a directive.
export interface NginxDirective {
  type: 'directive'
  name: string
  args: string[]
}

export interface NginxBlock {
  type: 'block'
  name: string
  args: string[]
  children: NginxNode[]
}

export interface NginxComment {
  type: 'comment'
  text: string
}

export interface NginxBlank {
  type: 'blank'
}

export type NginxNode = NginxDirective | NginxBlock | NginxComment | NginxBlank

export const directive = (name: string, args: string[] = []): NginxDirective => ({
  type: 'directive',
  name,
  args,
})
export const block = (name: string, args: string[], children: NginxNode[]): NginxBlock => ({
  type: 'block',
  name,
  args,
  children,
})
export const comment = (text: string): NginxComment => ({ type: 'comment', text })
export const blank: NginxBlank = { type: 'blank' }

// A token is a bare word without whitespace, quotes, braces, `;`, `#` or backslashes, or a quoted
// string without its own quote character or a backslash; nothing else can reach the file, so no
// value can close a block or add a directive.
const BARE_TOKEN = /^[^\s;{}#'"\\]+$/
const QUOTED_TOKEN = /^(?:'[^'\\\n]*'|"[^"\\\n]*")$/

function checkToken(token: string, where: string): string {
  if (BARE_TOKEN.test(token) || QUOTED_TOKEN.test(token)) return token
  throw new Error(`nginx: refusing to render unsafe token ${JSON.stringify(token)} in ${where}`)
}

function checkComment(text: string): string {
  if (/[\r\n]/.test(text)) throw new Error('nginx: a comment cannot span lines')
  return text
}

/** Renders nodes as nginx configuration text, four spaces per level. */
export function renderNginx(nodes: NginxNode[], depth = 0): string {
  const pad = '    '.repeat(depth)
  const lines: string[] = []
  for (const node of nodes) {
    if (node.type === 'blank') lines.push('')
    else if (node.type === 'comment') lines.push(`${pad}# ${checkComment(node.text)}`.trimEnd())
    else {
      const words = [node.name, ...node.args].map((w) => checkToken(w, node.name))
      if (node.type === 'directive') lines.push(`${pad}${words.join(' ')};`)
      else {
        const inner = node.children.length > 0 ? [renderNginx(node.children, depth + 1)] : []
        lines.push(`${pad}${words.join(' ')} {`, ...inner, `${pad}}`)
      }
    }
  }
  return lines.join('\n')
}
