// VPS side of the tunnel and the nginx site in front of it: pinned, checksum-verified frps;
// frps.toml (token from a file or stdin, never argv; tunnel port on 127.0.0.1 only; TLS forced
// with the tunnel identity made here; one allowed port); a hardened systemd unit with a dedicated
// user; ufw rules when ufw is active; then the whole nginx site for DOMAIN -> 127.0.0.1:FRP_REMOTE_PORT
// (https as soon as certbot keeps a certificate for DOMAIN, plain http before).
// Runs from a checkout (npx tsx remote/frps-setup.mts) or bundled (node frps-setup.mjs), so it
// takes flags and environment variables only (no .env).
import fs from 'node:fs'
import path from 'node:path'
import {
  defineScript,
  type FlagSpecs,
  type Flags,
  RuntimeFailure,
  registerSecret,
  runScript,
  say,
  UsageError,
  warn,
} from '../lib/core/cli.mts'
import { FRP_MIN_VERSION, frpTokenProblem, frpVersionProblem } from '../lib/core/env.mts'
import { run } from '../lib/core/exec.mts'
import { writeFileAtomic } from '../lib/core/fs.mts'
import { applyService, detectServiceManager, type ServiceManager } from '../lib/core/service.mts'
import { liveFiles } from '../lib/tunnel/certbot.mts'
import { frpsToml } from '../lib/tunnel/frp.mts'
import { frpsUnit, verifyFrpConfig } from '../lib/tunnel/frp-service.mts'
import {
  buildNginxSite,
  DEFAULT_ACME_WEBROOT,
  type InstallSiteOptions,
  installNginxSite,
  nginxControl,
  type TlsFiles,
  validateDomain,
  validateNginxPath,
  validatePort,
} from '../lib/tunnel/nginx.mts'
import { installFrp } from '../lib/tunnel/release.mts'
import { ensureTunnelIdentity, identityPaths } from '../lib/tunnel/tunnel-identity.mts'

const spec = defineScript({
  usage:
    'node frps-setup.mjs --domain DOMAIN (--token-file FILE | --token-stdin) [options]   (or: npx tsx remote/frps-setup.mts ...)',
  summary:
    'Installs frps (FRP_VERSION, SHA-256 checked) as a hardened systemd service that only opens the tunnel port\n' +
    "on 127.0.0.1, makes the tunnel's CA and server certificate (prints where the CA is, for frpc-setup --frps-ca),\n" +
    'opens 7000/80/443 in ufw when ufw is active, and installs the nginx site for DOMAIN in front of the tunnel\n' +
    '(plain http until certbot.mjs got a certificate; with a certificate in live/DOMAIN/ it serves https).\n' +
    'The token (FRP_TOKEN from the home .env) is read from a file or stdin, never from the command line.',
  flags: {
    domain: { type: 'string', env: 'DOMAIN', help: 'public hostname of PostHog, e.g. posthog.example.com' },
    'token-file': {
      type: 'string',
      path: true,
      env: 'FRP_TOKEN_FILE',
      help: 'file holding FRP_TOKEN (read once, copied to --config-dir)',
    },
    'token-stdin': { type: 'boolean', help: 'read FRP_TOKEN from stdin, e.g. piped over ssh' },
    'remote-port': {
      type: 'string',
      env: 'FRP_REMOTE_PORT',
      default: '12080',
      help: 'tunnel port on 127.0.0.1',
    },
    'bind-port': { type: 'string', env: 'FRP_SERVER_PORT', default: '7000', help: 'port frpc connects to' },
    'bind-addr': {
      type: 'string',
      env: 'FRP_BIND_ADDR',
      default: '0.0.0.0',
      help: 'address frps listens on for frpc',
    },
    'frp-version': { type: 'string', env: 'FRP_VERSION', default: '0.70.1', help: 'frp release to install' },
    'release-base-url': {
      type: 'string',
      env: 'FRP_RELEASE_BASE_URL',
      default: 'https://github.com/fatedier/frp/releases/download',
      help: 'where frp releases are downloaded from',
    },
    'install-dir': {
      type: 'string',
      path: true,
      env: 'FRP_INSTALL_DIR',
      default: '/usr/local/bin',
      help: 'where frps goes',
    },
    'config-dir': {
      type: 'string',
      path: true,
      env: 'FRP_CONFIG_DIR',
      default: '/etc/frp',
      help: 'frps.toml, token, tls/',
    },
    'log-dir': {
      type: 'string',
      path: true,
      env: 'FRP_LOG_DIR',
      default: '/var/log/frp',
      help: "frps's log directory",
    },
    'systemd-dir': {
      type: 'string',
      path: true,
      env: 'SYSTEMD_UNIT_DIR',
      default: '/etc/systemd/system',
      help: 'unit dir',
    },
    'service-manager': {
      type: 'string',
      env: 'FRP_SERVICE_MANAGER',
      default: 'auto',
      help: 'auto, systemd or none (write the unit, print the commands)',
    },
    user: { type: 'string', env: 'FRPS_USER', default: 'frps', help: 'system user frps runs as' },
    'ufw-bin': { type: 'string', path: true, env: 'UFW_BIN', default: 'ufw', help: 'ufw executable' },
    'skip-nginx': { type: 'boolean', env: 'FRPS_SKIP_NGINX', help: 'do not install the nginx site' },
    'sites-available-dir': {
      type: 'string',
      path: true,
      env: 'NGINX_SITES_AVAILABLE',
      default: '/etc/nginx/sites-available',
      help: 'where the site file goes (RHEL-style: /etc/nginx/conf.d)',
    },
    'sites-enabled-dir': {
      type: 'string',
      path: true,
      env: 'NGINX_SITES_ENABLED',
      default: '/etc/nginx/sites-enabled',
      help: "where it is enabled with a symlink ('' for none)",
    },
    'nginx-bin': { type: 'string', path: true, env: 'NGINX_BIN', default: 'nginx', help: 'nginx executable' },
    'nginx-conf': {
      type: 'string',
      path: true,
      env: 'NGINX_CONF',
      help: 'nginx.conf to test and reload with -c (tests)',
    },
    'http-listen': {
      type: 'string',
      env: 'NGINX_HTTP_LISTEN',
      help: 'comma-separated listen values of the plain-http server (default 80 and [::]:80)',
    },
    'https-listen': {
      type: 'string',
      env: 'NGINX_HTTPS_LISTEN',
      help: 'comma-separated listen values of the https server (default 443 and [::]:443)',
    },
    'acme-webroot': {
      type: 'string',
      path: true,
      env: 'ACME_WEBROOT',
      default: DEFAULT_ACME_WEBROOT,
      help: 'folder the site serves /.well-known/acme-challenge/ from (certbot --webroot)',
    },
    'letsencrypt-dir': {
      type: 'string',
      path: true,
      env: 'CERTBOT_CONFIG_DIR',
      default: '/etc/letsencrypt',
      help: "certbot's config dir: a certificate in live/DOMAIN/ makes the site serve https",
    },
  } satisfies FlagSpecs,
  notes:
    'Needs root on a real VPS. Typical use, from the home checkout:\n' +
    '  scp dist/remote/frps-setup.mjs root@VPS:\n' +
    "  grep '^FRP_TOKEN=' .env | cut -d= -f2- | ssh root@VPS node frps-setup.mjs --domain ph.example.com --token-stdin\n" +
    'Re-running is safe; without a token flag the installed token is kept. Exit codes: 0 ok, 1 failed, 2 bad input.',
})

type CliFlags = Flags<typeof spec.flags>

interface Options {
  domain: string
  remotePort: number
  bindPort: number
  bindAddr: string
  version: string
  baseUrl: string
  installDir: string
  configDir: string
  logDir: string
  systemdDir: string
  manager: ServiceManager
  user: string
  /** undefined: keep the installed token. */
  token?: string
}

function port(raw: string, name: string): number {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${name} ${raw} is not a port: use a number from 1 to 65535`)
  return validatePort(Number(raw), name)
}

function checkToken(token: string, source: string): string {
  registerSecret(token)
  const problem = frpTokenProblem(token)
  if (problem) throw new UsageError(`the token from ${source} ${problem}: use FRP_TOKEN from the home .env`)
  return token
}

function readToken(flags: CliFlags, tokenFile: string): string | undefined {
  const file = flags['token-file']
  if (file && flags['token-stdin'])
    throw new UsageError('--token-file and --token-stdin exclude each other: pick one')
  if (file) {
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      throw new UsageError(`--token-file ${file} cannot be read`)
    }
    return checkToken(text.trim(), file)
  }
  if (flags['token-stdin']) {
    if (process.stdin.isTTY) warn('paste the token, then press Enter and Ctrl-D')
    return checkToken(fs.readFileSync(0, 'utf8').trim(), 'stdin')
  }
  if (fs.existsSync(tokenFile)) return undefined
  throw new UsageError(
    'no token: pipe FRP_TOKEN from the home .env with --token-stdin, or pass --token-file FILE (never on the command line)',
  )
}

function readOptions(flags: CliFlags): Options {
  const str = (k: keyof CliFlags) => (flags[k] as string | undefined) ?? ''
  if (!str('domain')) throw new UsageError('no domain: pass --domain posthog.example.com (or set DOMAIN)')
  const version = str('frp-version')
  const versionProblem = frpVersionProblem(version)
  if (versionProblem) throw new UsageError(`--frp-version ${version} ${versionProblem}`)
  const bindAddr = str('bind-addr')
  if (!/^[\w.:-]+$/.test(bindAddr)) throw new UsageError(`--bind-addr ${bindAddr} is not an IP address`)
  if (!/^https?:\/\/\S+$/.test(str('release-base-url')))
    throw new UsageError(`--release-base-url ${str('release-base-url')} is not an http(s) URL`)
  const user = str('user')
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new UsageError(`--user ${user} is not a valid user name`)
  const configDir = path.resolve(str('config-dir'))
  return {
    domain: validateDomain(str('domain')),
    remotePort: port(str('remote-port'), '--remote-port'),
    bindPort: port(str('bind-port'), '--bind-port'),
    bindAddr,
    version,
    baseUrl: str('release-base-url'),
    installDir: path.resolve(str('install-dir')),
    configDir,
    logDir: path.resolve(str('log-dir')),
    systemdDir: path.resolve(str('systemd-dir')),
    manager: vpsServiceManager(str('service-manager')),
    user,
    token: readToken(flags, path.join(configDir, 'frps.token')),
  }
}

function vpsServiceManager(choice: string): ServiceManager {
  const manager = detectServiceManager(choice, 'linux')
  if (manager === 'launchd')
    throw new UsageError('--service-manager launchd: the VPS side runs on Linux (systemd or none)')
  return manager
}

function listenList(raw: string | undefined): string[] | undefined {
  if (!raw) return undefined
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

/** The certificate certbot keeps for DOMAIN, when there is one: the site then serves https. */
function existingCertificate(letsencryptDir: string, domain: string): TlsFiles | undefined {
  const files = liveFiles(letsencryptDir, domain)
  return fs.existsSync(files.certificate) && fs.existsSync(files.key) ? files : undefined
}

function siteOptions(flags: CliFlags, o: Options): InstallSiteOptions {
  const enabled = flags['sites-enabled-dir'] as string
  const http = listenList(flags['http-listen'])
  const https = listenList(flags['https-listen'])
  const tls = existingCertificate(path.resolve(flags['letsencrypt-dir'] as string), o.domain)
  return {
    domain: o.domain,
    upstreamPort: o.remotePort,
    ...(http ? { httpListen: http } : {}),
    ...(https ? { httpsListen: https } : {}),
    acmeWebroot: validateNginxPath(path.resolve(flags['acme-webroot'] as string), '--acme-webroot'),
    ...(tls ? { tls } : {}),
    sitesAvailableDir: path.resolve(flags['sites-available-dir'] as string),
    ...(enabled ? { sitesEnabledDir: path.resolve(enabled) } : {}),
    ...nginxControl(flags['nginx-bin'] as string, flags['nginx-conf']),
    log: say,
  }
}

async function commandWorks(bin: string, args: string[]): Promise<boolean> {
  const r = await run(bin, args, { nothrow: true, timeout: '30s' })
  return r.exitCode === 0
}

/** The frps system user: created on a real systemd host; on `none` only reported. */
async function ensureUser(o: Options): Promise<{ uid: number; gid: number } | undefined> {
  const useradd = [
    'useradd',
    '--system',
    '--no-create-home',
    '--home-dir',
    '/nonexistent',
    '--shell',
    '/usr/sbin/nologin',
    o.user,
  ]
  if (o.manager !== 'systemd') {
    say(`would run (as root, with systemd): ${useradd.join(' ')}`)
    return undefined
  }
  if (!(await commandWorks('id', ['-u', o.user]))) {
    const r = await run(useradd[0]!, useradd.slice(1), { nothrow: true, timeout: '60s' })
    if (r.exitCode !== 0)
      throw new RuntimeFailure(
        `could not create the system user ${o.user}: ${r.stderr.trim()}`,
        'run as root',
      )
    say(`created system user ${o.user}`)
  }
  const uid = Number((await run('id', ['-u', o.user], { timeout: '10s' })).stdout.trim())
  const gid = Number((await run('id', ['-g', o.user], { timeout: '10s' })).stdout.trim())
  return { uid, gid }
}

/** Files frps reads: root-owned, group = the frps user, 0640; without that user only root reads them. */
function protect(file: string, owner: { uid: number; gid: number } | undefined): void {
  if (!owner) return
  fs.chownSync(file, 0, owner.gid)
  fs.chmodSync(file, 0o640)
}

async function openFirewall(ufwBin: string, bindPort: number): Promise<void> {
  const status = await run(ufwBin, ['status'], { nothrow: true, timeout: '30s' })
  if (status.exitCode === 127 || /command not found|No such file/.test(status.stderr)) {
    say(`ufw is not installed: make sure your provider's firewall allows ${bindPort}, 80 and 443 (TCP)`)
    return
  }
  if (!/^Status: active/m.test(status.stdout)) {
    say(`ufw is not active: nothing to open (your provider's firewall must allow ${bindPort}, 80 and 443)`)
    return
  }
  const rules = [`${bindPort}/tcp`, '80/tcp', '443/tcp']
  for (const rule of rules) {
    const r = await run(ufwBin, ['allow', rule], { nothrow: true, timeout: '30s' })
    if (r.exitCode !== 0)
      throw new RuntimeFailure(
        `'ufw allow ${rule}' failed: ${r.stderr.trim() || r.stdout.trim()}`,
        'run as root',
      )
  }
  say(`ufw is active: allowed ${rules.join(', ')}`)
}

async function main(flags: CliFlags): Promise<number> {
  const o = readOptions(flags)
  const skipNginx = Boolean(flags['skip-nginx'])
  const site = skipNginx ? undefined : siteOptions(flags, o)
  if (site) {
    buildNginxSite(site) // bad listen values or paths are bad input before anything is installed
    if (!(await commandWorks(site.nginxBin!, ['-v'])))
      throw new RuntimeFailure(
        `nginx is not installed (${site.nginxBin} -v failed)`,
        'apt-get install -y nginx, then re-run',
      )
  }

  const tokenFile = path.join(o.configDir, 'frps.token')
  const tlsDir = path.join(o.configDir, 'tls')
  // built before anything is installed: a value frp cannot read is bad input (exit 2)
  const text = frpsToml({
    bindAddr: o.bindAddr,
    bindPort: o.bindPort,
    remotePort: o.remotePort,
    tokenFile,
    certFile: identityPaths(tlsDir).certFile,
    keyFile: identityPaths(tlsDir).keyFile,
    logFile: path.join(o.logDir, 'frps.log'),
  })

  const bin = await installFrp({
    version: o.version,
    baseUrl: o.baseUrl,
    installDir: o.installDir,
    binaries: ['frps'],
    say,
  })
  const frpsBin = bin.paths.frps!
  say(
    bin.result === 'installed'
      ? `installed frps ${o.version} at ${frpsBin}`
      : `frps ${o.version} already installed`,
  )

  const owner = await ensureUser(o)
  fs.mkdirSync(o.configDir, { recursive: true, mode: 0o755 })
  fs.mkdirSync(o.logDir, { recursive: true, mode: 0o750 })
  if (owner) fs.chownSync(o.logDir, owner.uid, owner.gid)

  const tokenMode = owner ? 0o640 : 0o600
  let tokenResult: string = 'unchanged'
  if (o.token !== undefined) {
    tokenResult = writeFileAtomic(tokenFile, `${o.token}\n`, { mode: tokenMode, backup: true })
    say(tokenResult === 'unchanged' ? 'token is up to date' : `token ${tokenResult}: ${tokenFile}`)
  } else {
    registerSecret(fs.readFileSync(tokenFile, 'utf8').trim())
    say(`keeping the installed token (${tokenFile})`)
  }
  protect(tokenFile, owner)

  const id = await ensureTunnelIdentity({ dir: tlsDir, serverName: o.domain })
  if (id.made.length)
    say(
      `tunnel identity ${id.made.includes('ca') ? 'CA and certificate made' : 'certificate renewed'} in ${tlsDir}`,
    )
  protect(id.keyFile, owner)
  if (owner) {
    // frps (its own user) must reach server.crt/.key; ca.key stays root-only (0600).
    fs.chownSync(tlsDir, 0, owner.gid)
    fs.chmodSync(tlsDir, 0o750)
  }

  await verifyFrpConfig({
    kind: 'frps',
    bin: frpsBin,
    dir: o.configDir,
    text,
    hint: `check --frp-version (${FRP_MIN_VERSION} or later) and report this as a bug`,
  })
  const configFile = path.join(o.configDir, 'frps.toml')
  const configResult = writeFileAtomic(configFile, text, { mode: 0o644, backup: true })
  say(configResult === 'unchanged' ? `${configFile} is up to date` : `${configFile} ${configResult}`)

  const service = await applyService({
    manager: o.manager,
    kind: 'systemd',
    name: 'frps.service',
    file: path.join(o.systemdDir, 'frps.service'),
    content: frpsUnit({ binPath: frpsBin, configFile, logDir: o.logDir, user: o.user }),
    restart:
      bin.result === 'installed' ||
      configResult !== 'unchanged' ||
      tokenResult !== 'unchanged' ||
      id.made.length > 0,
    say,
  })
  if (service === 'unchanged') say('frps service is running and up to date')

  await openFirewall(flags['ufw-bin'] as string, o.bindPort)

  if (site) await installNginxSite(site)
  else say('nginx site skipped (--skip-nginx)')

  say(`tunnel CA: ${id.caFile}`)
  say(
    `copy it home and pin the VPS identity: scp root@<this VPS>:${id.caFile} frps-ca.crt && sudo -E npx tsx scripts/frpc-setup.mts --frps-ca frps-ca.crt`,
  )
  if (site?.tls)
    say(`nginx serves https://${o.domain} with the certificate in ${path.dirname(site.tls.certificate)}`)
  else if (site) {
    say(
      `until there is a certificate nginx serves plain http: curl http://${o.domain}/_health should answer ok`,
    )
    say(`next: https (node certbot.mjs --domain ${o.domain} --email you@example.com --yes)`)
  }
  return 0
}

await runScript('frps-setup', spec, main)
