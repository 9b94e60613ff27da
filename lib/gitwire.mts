// A minimal git protocol v2 client over smart HTTP (ls-refs and fetch), so the precise fetch can
// ask for exactly the objects it needs, one POST per tree level, instead of one `git fetch`
// process (capability GET + POST) per level. Packs are stored by `git index-pack`.
// Protocol: https://git-scm.com/docs/gitprotocol-v2 and gitprotocol-common (pkt-line).

export const FLUSH = Buffer.from('0000')
export const DELIM = Buffer.from('0001')

export function pktLine(text: string): Buffer {
  const data = Buffer.from(text)
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0')), data])
}

export type Pkt = { kind: 'data'; data: Buffer } | { kind: 'flush' | 'delim' | 'end' }

export function parsePkts(buf: Buffer): Pkt[] {
  const out: Pkt[] = []
  let i = 0
  while (i + 4 <= buf.length) {
    const len = Number.parseInt(buf.subarray(i, i + 4).toString(), 16)
    if (Number.isNaN(len)) throw new Error('malformed pkt-line in the server response')
    if (len < 4) {
      out.push({ kind: len === 0 ? 'flush' : len === 1 ? 'delim' : 'end' })
      i += 4
      continue
    }
    if (i + len > buf.length) throw new Error('truncated server response')
    out.push({ kind: 'data', data: buf.subarray(i + 4, i + len) })
    i += len
  }
  return out
}

export interface WireStats {
  requests: number
  bytes: number
}

export class WireError extends Error {
  /** A transport failure worth retrying (no answer, 5xx), not a refusal. */
  readonly network: boolean
  constructor(message: string, network: boolean) {
    super(message)
    this.network = network
  }
}

async function post(url: string, body: Buffer, timeoutMs: number, stats?: WireStats): Promise<Buffer> {
  let res: Response
  try {
    res = await fetch(`${url.replace(/\/+$/, '')}/git-upload-pack`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-git-upload-pack-request',
        Accept: 'application/x-git-upload-pack-result',
        'Git-Protocol': 'version=2',
        'User-Agent': 'git/2.39-posthog-homelab',
      },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (e) {
    const err = e as Error & { cause?: { message?: string } }
    throw new WireError(`unable to access '${url}': ${err.cause?.message ?? err.message}`, true)
  }
  if (stats) stats.requests++
  if (!res.ok)
    throw new WireError(
      res.status === 404 ? `repository '${url}' not found` : `HTTP ${res.status} from '${url}'`,
      res.status >= 500 || res.status === 429,
    )
  const data = Buffer.from(await res.arrayBuffer())
  if (stats) stats.bytes += data.length
  return data
}

function request(command: string, args: string[]): Buffer {
  return Buffer.concat([
    pktLine(`command=${command}\n`),
    pktLine('agent=git/2.39-posthog-homelab\n'),
    DELIM,
    ...args.map((a) => pktLine(`${a}\n`)),
    FLUSH,
  ])
}

export interface RemoteRef {
  oid: string
  name: string
  peeled?: string
}

export async function lsRefs(
  url: string,
  prefixes: string[],
  timeoutMs: number,
  stats?: WireStats,
): Promise<RemoteRef[]> {
  const body = request('ls-refs', ['peel', 'symrefs', ...prefixes.map((p) => `ref-prefix ${p}`)])
  const refs: RemoteRef[] = []
  for (const pkt of parsePkts(await post(url, body, timeoutMs, stats))) {
    if (pkt.kind !== 'data') continue
    const [oid, name, ...attrs] = pkt.data.toString().trimEnd().split(' ')
    if (!oid || !name || !/^[0-9a-f]{40}$/.test(oid)) throw new WireError('unexpected ls-refs answer', false)
    const peeled = attrs.find((a) => a.startsWith('peeled:'))?.slice(7)
    refs.push({ oid, name, ...(peeled ? { peeled } : {}) })
  }
  return refs
}

export interface FetchedPack {
  pack: Buffer
  shallow: string[]
}

/** Fetches exactly `wants` (and, per the filter, what lies below them) as one pack. */
export async function fetchPack(
  url: string,
  wants: string[],
  opts: { filter?: string; deepen?: number; timeoutMs: number; stats?: WireStats },
): Promise<FetchedPack> {
  const args = ['ofs-delta', 'no-progress', ...wants.map((w) => `want ${w}`)]
  if (opts.deepen) args.push(`deepen ${opts.deepen}`)
  if (opts.filter) args.push(`filter ${opts.filter}`)
  args.push('done')
  const pkts = parsePkts(await post(url, request('fetch', args), opts.timeoutMs, opts.stats))
  const shallow: string[] = []
  const chunks: Buffer[] = []
  let section = ''
  for (const pkt of pkts) {
    if (pkt.kind !== 'data') continue
    const text = pkt.data.toString('latin1')
    if (
      section !== 'packfile' &&
      /^(shallow-info|packfile|acknowledgments|wanted-refs|packfile-uris)\n?$/.test(text)
    ) {
      section = text.trim()
      continue
    }
    if (section === 'shallow-info' && text.startsWith('shallow ')) shallow.push(text.slice(8, 48))
    else if (section === 'packfile') {
      const band = pkt.data[0]
      if (band === 1) chunks.push(pkt.data.subarray(1))
      else if (band === 3)
        throw new WireError(`the server says: ${pkt.data.subarray(1).toString().trim()}`, false)
    } else if (text.startsWith('ERR ')) throw new WireError(`the server says: ${text.slice(4).trim()}`, false)
  }
  if (section !== 'packfile') throw new WireError('the server sent no pack', false)
  return { pack: Buffer.concat(chunks), shallow }
}
