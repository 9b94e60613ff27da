// The nginx site in front of the frp tunnel (reference tunnel-proxy-tls.md §4), built from a small
// typed block model and rendered by one function, plus its installer: atomic write with a backup,
// `nginx -t` before every reload, the previous files put back when the test fails, and certbot's
// additions (`# managed by Certbot`) carried over when the generated core changes.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { RuntimeFailure, UsageError } from './cli.mts'
import { run } from './exec.mts'
import { readIfExists, type WriteResult, writeFileAtomic } from './fsutil.mts'

// ---------------------------------------------------------------------------------------------
// Block model and renderer

export interface NginxDirective {
  type: 'directive'
  name: string
  args: string[]
  /** Trailing comment on the same line, without the `#`. */
  comment?: string
}

export interface NginxBlock {
  type: 'block'
  name: string
  args: string[]
  children: NginxNode[]
  comment?: string
}

export interface NginxComment {
  type: 'comment'
  text: string
}

export interface NginxBlank {
  type: 'blank'
}

export type NginxNode = NginxDirective | NginxBlock | NginxComment | NginxBlank

export const directive = (name: string, args: string[] = [], comment?: string): NginxDirective => ({
  type: 'directive',
  name,
  args,
  ...(comment ? { comment } : {}),
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
      const head = [checkToken(node.name, node.name), ...node.args.map((a) => checkToken(a, node.name))].join(
        ' ',
      )
      const tail = node.comment ? ` # ${checkComment(node.comment)}` : ''
      if (node.type === 'directive') lines.push(`${pad}${head};${tail}`)
      else {
        const inner = node.children.length > 0 ? [renderNginx(node.children, depth + 1)] : []
        lines.push(`${pad}${head} {`, ...inner, `${pad}}${tail}`)
      }
    }
  }
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// Parser: enough of nginx's syntax to read back our own file after certbot edited it.

interface Token {
  kind: 'word' | '{' | '}' | ';' | 'comment' | 'newline'
  text: string
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if (c === '\n') {
      tokens.push({ kind: 'newline', text: c })
      i++
    } else if (/\s/.test(c)) i++
    else if (c === '#') {
      const end = text.indexOf('\n', i)
      const stop = end < 0 ? text.length : end
      tokens.push({ kind: 'comment', text: text.slice(i + 1, stop).trim() })
      i = stop
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ kind: c, text: c })
      i++
    } else if (c === '"' || c === "'") {
      let j = i + 1
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1
      if (j >= text.length) throw new Error('nginx: unterminated quoted string')
      tokens.push({ kind: 'word', text: text.slice(i, j + 1) })
      i = j + 1
    } else {
      let j = i
      while (j < text.length && !/[\s;{}#]/.test(text[j]!)) j++
      // nginx allows `#` inside a word (e.g. `a#b`); only a leading `#` starts a comment
      while (j < text.length && text[j] === '#' && j > i) {
        j++
        while (j < text.length && !/[\s;{}#]/.test(text[j]!)) j++
      }
      tokens.push({ kind: 'word', text: text.slice(i, j) })
      i = j
    }
  }
  return tokens
}

/** Parses nginx configuration text into the block model (comments and blank lines kept). */
export function parseNginx(text: string): NginxNode[] {
  const tokens = tokenize(text)
  let pos = 0
  const parseList = (inBlock: boolean): NginxNode[] => {
    const out: NginxNode[] = []
    let words: string[] = []
    let newlines = 0
    const trailingComment = (): string | undefined => {
      const t = tokens[pos]
      if (t?.kind === 'comment') {
        pos++
        return t.text
      }
      return undefined
    }
    while (pos < tokens.length) {
      const t = tokens[pos++]!
      if (t.kind === 'newline') {
        if (words.length === 0 && ++newlines === 2 && out.length > 0) out.push(blank)
        continue
      }
      newlines = 0
      if (t.kind === 'comment') {
        if (words.length > 0) throw new Error(`nginx: comment inside directive '${words[0]}'`)
        out.push(comment(t.text))
      } else if (t.kind === 'word') words.push(t.text)
      else if (t.kind === ';') {
        if (words.length === 0) throw new Error('nginx: empty directive')
        const [name, ...args] = words
        out.push(directive(name!, args, trailingComment()))
        words = []
      } else if (t.kind === '{') {
        if (words.length === 0) throw new Error('nginx: block without a name')
        const [name, ...args] = words
        words = []
        const children = parseList(true)
        const node: NginxBlock = block(name!, args, children)
        const c = trailingComment()
        out.push(c ? { ...node, comment: c } : node)
      } else {
        if (!inBlock || words.length > 0) throw new Error('nginx: unexpected }')
        while (out.at(-1)?.type === 'blank') out.pop()
        return out
      }
    }
    if (inBlock || words.length > 0) throw new Error('nginx: unexpected end of file')
    while (out.at(-1)?.type === 'blank') out.pop()
    return out
  }
  return parseList(false)
}

// ---------------------------------------------------------------------------------------------
// The site

export interface SiteOptions {
  domain: string
  /** frps `remotePort` on 127.0.0.1 (FRP_REMOTE_PORT). */
  upstreamPort: number
  /** `listen` values of the HTTP server; default port 80 on IPv4 and IPv6. Tests use loopback ports. */
  httpListen?: string[]
}

const HOSTNAME = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i
const LISTEN = /^(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]|localhost):)?\d{1,5}$/i

export function validateDomain(domain: string): string {
  if (!HOSTNAME.test(domain) || !domain.includes('.') || /^[\d.]+$/.test(domain))
    throw new UsageError(
      `domain '${domain}' is not a hostname: use the public name, e.g. posthog.example.com`,
    )
  return domain.toLowerCase()
}

export function validatePort(port: number, name: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`${name} ${port} is not a port: use a number from 1 to 65535`)
  return port
}

function validateListen(value: string): string {
  const port = Number(value.split(':').at(-1))
  if (!LISTEN.test(value) || port < 1 || port > 65535)
    throw new UsageError(`listen address '${value}' is not [address:]port`)
  return value
}

export const CERTBOT_MARK = 'managed by Certbot'
const HEADER_TAG = 'posthog-homelab core-sha256:'

function upgradeMap(): NginxBlock {
  return block(
    'map',
    ['$http_upgrade', '$connection_upgrade'],
    [directive('default', ['upgrade']), directive("''", ['close'])],
  )
}

/** The generated server block, before certbot touches it. */
function coreServer(domain: string, upstream: string, listen: string[]): NginxBlock {
  return block(
    'server',
    [],
    [
      ...listen.map((l) => directive('listen', [l])),
      directive('server_name', [domain]),
      blank,
      comment("PostHog's proxy reference: support 64 MB request bodies (nginx's default 1m gives 413)"),
      directive('client_max_body_size', ['64m']),
      directive('proxy_http_version', ['1.1']),
      directive('proxy_set_header', ['Host', '$host']),
      directive('proxy_set_header', ['X-Real-IP', '$remote_addr']),
      comment("nginx is the first hop: overwrite X-Forwarded-For so clients can't spoof their IP"),
      directive('proxy_set_header', ['X-Forwarded-For', '$remote_addr']),
      directive('proxy_set_header', ['X-Forwarded-Proto', '$scheme']),
      directive('proxy_set_header', ['X-Forwarded-Host', '$host']),
      directive('proxy_set_header', ['X-Forwarded-Port', '$server_port']),
      directive('proxy_set_header', ['Upgrade', '$http_upgrade']),
      directive('proxy_set_header', ['Connection', '$connection_upgrade']),
      directive('proxy_read_timeout', ['300s']),
      directive('proxy_send_timeout', ['300s']),
      blank,
      block('location', ['/'], [directive('proxy_pass', [upstream])]),
      blank,
      comment('server-sent events (livestream): unbuffered, long-lived'),
      block(
        'location',
        ['/livestream'],
        [
          directive('proxy_pass', [upstream]),
          directive('proxy_buffering', ['off']),
          directive('proxy_cache', ['off']),
          directive('proxy_read_timeout', ['3600s']),
        ],
      ),
    ],
  )
}

function coreNodes(opts: SiteOptions): { domain: string; nodes: NginxNode[] } {
  const domain = validateDomain(opts.domain)
  const port = validatePort(opts.upstreamPort, 'upstream port')
  const listen = (opts.httpListen ?? ['80', '[::]:80']).map(validateListen)
  const upstream = `http://127.0.0.1:${port}`
  return { domain, nodes: [upgradeMap(), blank, coreServer(domain, upstream, listen)] }
}

function header(domain: string, hash: string): NginxNode[] {
  return [
    comment(
      `PostHog at ${domain} through the frp tunnel, written by posthog-homelab (remote/frps-setup.mts).`,
    ),
    comment(`Lines marked "# ${CERTBOT_MARK}" are certbot's: re-running the setup keeps them.`),
    comment('Hand edits survive a re-run with the same settings; changed settings regenerate the file'),
    comment('(the previous one is kept as a .bak-<time> copy next to it).'),
    comment(`${HEADER_TAG} ${hash}`),
    blank,
  ]
}

function coreHash(nodes: NginxNode[]): string {
  return createHash('sha256').update(renderNginx(nodes)).digest('hex').slice(0, 16)
}

/** The nginx site for DOMAIN (HTTP only; certbot adds TLS). Pure; throws UsageError on bad input. */
export function buildNginxSite(opts: SiteOptions): string {
  return renderSite(opts, undefined)
}

function renderSite(opts: SiteOptions, certbot: CertbotAdditions | undefined): string {
  const { domain, nodes } = coreNodes(opts)
  const body = certbot ? applyCertbot(nodes, certbot) : nodes
  return `${renderNginx([...header(domain, coreHash(nodes)), ...body])}\n`
}

// ---------------------------------------------------------------------------------------------
// Certbot's additions
//
// certbot --nginx edits the server block in place and marks every line it adds with
// `# managed by Certbot`; with --redirect it also adds a second server block (port 80, `if ($host
// = DOMAIN) { return 301 ... } # managed by Certbot`, `return 404; # managed by Certbot`) and
// moves the port-80 `listen` lines there. We read certbot's state back as data, not as text
// offsets: (1) the marked directives of the proxy server block, (2) every other server block that
// holds a marked line, kept whole, (3) the `listen` lines certbot moved out of the proxy block.
// A regenerated file is the new core with (1) appended to the proxy block, (3) removed from it,
// and (2) after it: the shape certbot itself writes, so certbot recognises it on its next run.

export interface CertbotAdditions {
  /** Marked lines of the proxy server block (listen 443 ssl, ssl_certificate, include ...; older
   * certbot versions put an `if ($scheme != "https") {...}` redirect here). */
  serverDirectives: (NginxDirective | NginxBlock)[]
  /** Other server blocks certbot added (the HTTP->HTTPS redirect). */
  extraServers: NginxBlock[]
  /** `listen` values of the generated core that certbot removed from the proxy block. */
  removedListens: string[]
}

const isMarked = (n: NginxNode): boolean =>
  (n.type === 'directive' || n.type === 'block') && (n.comment ?? '').includes(CERTBOT_MARK)

function hasMarked(b: NginxBlock): boolean {
  return b.children.some((c) => isMarked(c) || (c.type === 'block' && hasMarked(c)))
}

const isProxyServer = (b: NginxBlock): boolean =>
  b.children.some((c) => c.type === 'block' && c.name === 'location')

/** Reads certbot's additions from an existing site file; undefined when there are none. */
export function extractCertbot(
  text: string,
  httpListen: string[] = ['80', '[::]:80'],
): CertbotAdditions | undefined {
  let nodes: NginxNode[]
  try {
    nodes = parseNginx(text)
  } catch {
    return undefined
  }
  const servers = nodes.filter((n): n is NginxBlock => n.type === 'block' && n.name === 'server')
  const proxy = servers.find(isProxyServer)
  const serverDirectives = (proxy?.children ?? []).filter((c): c is NginxDirective | NginxBlock =>
    isMarked(c),
  )
  const extraServers = servers.filter((s) => s !== proxy && hasMarked(s))
  if (serverDirectives.length === 0 && extraServers.length === 0) return undefined
  const listens = new Set(
    (proxy?.children ?? []).flatMap((c) =>
      c.type === 'directive' && c.name === 'listen' ? [c.args.join(' ')] : [],
    ),
  )
  const removedListens = proxy ? httpListen.filter((l) => !listens.has(l)) : []
  return { serverDirectives, extraServers, removedListens }
}

function applyCertbot(core: NginxNode[], certbot: CertbotAdditions): NginxNode[] {
  const removed = new Set(certbot.removedListens)
  return core.flatMap((n): NginxNode[] => {
    if (n.type !== 'block' || n.name !== 'server') return [n]
    const kept = n.children.filter(
      (c) => !(c.type === 'directive' && c.name === 'listen' && removed.has(c.args.join(' '))),
    )
    const server = { ...n, children: [...kept, blank, ...certbot.serverDirectives] }
    return [server, ...certbot.extraServers.flatMap((s) => [blank, s])]
  })
}

/** The core hash recorded in a file's header, if it has one. */
export function recordedHash(text: string): string | undefined {
  const m = new RegExp(`^# ${HEADER_TAG} ([0-9a-f]+)$`, 'm').exec(text)
  return m?.[1]
}

/**
 * What the site file should hold, given what is there now: the existing text when it was built
 * from the same core (certbot's lines and hand edits stay), else the new core with certbot's
 * additions re-applied.
 */
export function planSite(opts: SiteOptions, existing: string | undefined): string {
  const { nodes } = coreNodes(opts)
  if (existing !== undefined && recordedHash(existing) === coreHash(nodes)) return existing
  const certbot = existing === undefined ? undefined : extractCertbot(existing, opts.httpListen)
  return renderSite(opts, certbot)
}

// ---------------------------------------------------------------------------------------------
// Installer

export interface InstallSiteOptions extends SiteOptions {
  /** Where the site file lives (Debian: /etc/nginx/sites-available; RHEL-style: /etc/nginx/conf.d). */
  sitesAvailableDir: string
  /** When set, the site is enabled with a symlink here (Debian: /etc/nginx/sites-enabled). */
  sitesEnabledDir?: string
  nginxBin?: string
  /** Arguments for the config test; default `-t`. Tests add `-c <conf>` and `-g ...`. */
  nginxTestArgs?: string[]
  /** Reloads nginx after a passed test; default `systemctl reload-or-restart nginx` or `nginx -s reload`. */
  reload?: () => Promise<void>
  log: (line: string) => void
}

export function siteFileName(domain: string): string {
  return `${validateDomain(domain)}.conf`
}

interface Snapshot {
  site: string | undefined
  /** Where the sites-enabled link pointed before (undefined: there was none). */
  linkTarget: string | undefined
}

/** The current target of the enabling symlink; refuses a regular file in its place. */
function readLink(link: string): string | undefined {
  try {
    return fs.readlinkSync(link)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EINVAL')
      throw new RuntimeFailure(`${link} exists and is not a symlink`, 'move it away (it is yours) and re-run')
    if (code !== 'ENOENT') throw e
    return undefined
  }
}

function pointLink(link: string, target: string | undefined): void {
  fs.rmSync(link, { force: true })
  if (target === undefined) return
  fs.mkdirSync(path.dirname(link), { recursive: true })
  fs.symlinkSync(target, link)
}

function restore(file: string, link: string | undefined, snapshot: Snapshot): void {
  if (snapshot.site === undefined) fs.rmSync(file, { force: true })
  else writeFileAtomic(file, snapshot.site)
  if (link) pointLink(link, snapshot.linkTarget)
}

async function defaultReload(nginxBin: string): Promise<void> {
  if (fs.existsSync('/run/systemd/system'))
    await run('systemctl', ['reload-or-restart', 'nginx'], { timeout: '60s' })
  else await run(nginxBin, ['-s', 'reload'], { timeout: '30s' })
}

/** Last meaningful line of `nginx -t` output, e.g. `unknown directive "x" in /etc/...:12`. */
function nginxError(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.replace(/^nginx: (\[emerg\] )?/, '').trim())
    .filter((l) => l && !/test failed|syntax is ok/.test(l))
  return lines[0] ?? 'nginx -t failed'
}

/**
 * Writes the site (atomically, previous file kept as a backup), enables it, runs `nginx -t`
 * and reloads. When the test fails the previous files are put back, nginx keeps serving the old
 * configuration, and a RuntimeFailure says why.
 */
export async function installNginxSite(opts: InstallSiteOptions): Promise<WriteResult> {
  const file = path.join(opts.sitesAvailableDir, siteFileName(opts.domain))
  const existing = readIfExists(file)
  const wanted = planSite(opts, existing)
  const link = opts.sitesEnabledDir ? path.join(opts.sitesEnabledDir, path.basename(file)) : undefined
  const snapshot: Snapshot = { site: existing, linkTarget: link ? readLink(link) : undefined }
  const result = writeFileAtomic(file, wanted, { backup: true, mode: 0o644 })
  const target = path.resolve(file)
  const linked =
    link !== undefined &&
    (snapshot.linkTarget === undefined || path.resolve(path.dirname(link), snapshot.linkTarget) !== target)
  if (linked) pointLink(link, target)
  if (result === 'unchanged' && !linked) {
    opts.log(`nginx site ${file} is up to date`)
    return 'unchanged'
  }
  const nginxBin = opts.nginxBin ?? 'nginx'
  const test = await run(nginxBin, opts.nginxTestArgs ?? ['-t'], { nothrow: true, timeout: '30s' })
  if (!test.ok) {
    restore(file, link, snapshot)
    if (test.exitCode === 127)
      throw new RuntimeFailure(
        `${nginxBin} not found, so the site was not installed`,
        'install nginx (apt-get install nginx) and re-run',
      )
    throw new RuntimeFailure(
      `nginx rejected the new site ${file} (${nginxError(test.stderr || test.stdout)}); the previous files are back and nginx keeps serving`,
      'fix the reported line (or the file it names) and re-run',
    )
  }
  await (opts.reload ?? (() => defaultReload(nginxBin)))()
  opts.log(`nginx site ${file} ${result === 'unchanged' ? 'enabled' : result}; nginx -t passed, reloaded`)
  return result === 'unchanged' ? 'updated' : result
}
