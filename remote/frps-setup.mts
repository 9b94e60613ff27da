// VPS side of the tunnel and the nginx site in front of it: pinned, checksum-verified frps;
// frps.toml (token from a file or stdin, never argv; tunnel port on 127.0.0.1 only; TLS forced
// with the tunnel identity made here; one allowed port); a hardened systemd unit with a dedicated
// user; ufw rules when ufw is active; then the whole nginx site for DOMAIN -> 127.0.0.1:FRP_REMOTE_PORT
// (https as soon as certbot keeps a certificate for DOMAIN, plain http before).
// Runs from a checkout (npx tsx remote/frps-setup.mts) or bundled (node frps-setup.mjs), so it
// takes flags and environment variables only (no .env).
import path from 'node:path'
import { defineScript, type FlagSpecs, type Flags, runScript, say, warn } from '../lib/core/cli.mts'
import { frpFolderFlags } from '../lib/tunnel/frp-flags.mts'
import { installFrps } from '../lib/tunnel/frps-install.mts'
import { frpsConfigText, frpsFiles, frpsSettings } from '../lib/tunnel/frps-settings.mts'
import { FRPS_SITE_FLAGS, frpsSiteOptions } from '../lib/tunnel/frps-site.mts'
import { readNewToken } from '../lib/tunnel/frps-token.mts'
import { requireNginx } from '../lib/tunnel/nginx-control.mts'
import { installNginxSite } from '../lib/tunnel/nginx-install.mts'
import { DOMAIN_FLAG } from '../lib/tunnel/nginx-settings.mts'
import { buildNginxSite } from '../lib/tunnel/nginx-site.mts'
import { openFirewall } from '../lib/tunnel/ufw.mts'

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
    domain: DOMAIN_FLAG,
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
    ...frpFolderFlags('frps', {
      configDir: '/etc/frp',
      configHelp: 'frps.toml, token, tls/',
      logDir: '/var/log/frp',
    }),
    'service-manager': {
      type: 'string',
      env: 'FRP_SERVICE_MANAGER',
      default: 'auto',
      help: 'auto, systemd or none (write the unit, print the commands)',
    },
    user: { type: 'string', env: 'FRPS_USER', default: 'frps', help: 'system user frps runs as' },
    'ufw-bin': { type: 'string', path: true, env: 'UFW_BIN', default: 'ufw', help: 'ufw executable' },
    'skip-nginx': { type: 'boolean', env: 'FRPS_SKIP_NGINX', help: 'do not install the nginx site' },
    ...FRPS_SITE_FLAGS,
  } satisfies FlagSpecs,
  notes:
    'Needs root on a real VPS. Typical use, from the home checkout:\n' +
    '  scp dist/remote/frps-setup.mjs root@VPS:\n' +
    "  grep '^FRP_TOKEN=' .env | cut -d= -f2- | ssh root@VPS node frps-setup.mjs --domain ph.example.com --token-stdin\n" +
    'Re-running is safe; without a token flag the installed token is kept. Exit codes: 0 ok, 1 failed, 2 bad input.',
})

type CliFlags = Flags<typeof spec.flags>

async function main(flags: CliFlags): Promise<number> {
  const s = frpsSettings({
    domain: flags.domain,
    remotePort: flags['remote-port'],
    bindPort: flags['bind-port'],
    bindAddr: flags['bind-addr'],
    version: flags['frp-version'],
    baseUrl: flags['release-base-url'],
    installDir: flags['install-dir'],
    configDir: flags['config-dir'],
    logDir: flags['log-dir'],
    systemdDir: flags['systemd-dir'],
    manager: flags['service-manager'],
    user: flags.user,
  })
  const tokenSource = { file: flags['token-file'], stdin: flags['token-stdin'] }
  const token = readNewToken(tokenSource, frpsFiles(s).tokenFile, warn)
  // bad listen values, paths or a value frp cannot read are bad input before anything is installed
  const site = flags['skip-nginx']
    ? undefined
    : frpsSiteOptions(flags, { domain: s.domain, upstreamPort: s.remotePort, log: say })
  if (site) buildNginxSite(site)
  const config = frpsConfigText(s)
  if (site) await requireNginx(site.nginxBin)

  const { caFile } = await installFrps(s, config, token, say)
  await openFirewall(flags['ufw-bin'], s.bindPort, say)
  if (site) await installNginxSite(site)
  else say('nginx site skipped (--skip-nginx)')

  say(`tunnel CA: ${caFile}`)
  say(
    `copy it home and pin the VPS identity: scp root@<this VPS>:${caFile} frps-ca.crt && sudo -E npx tsx scripts/frpc-setup.mts --frps-ca frps-ca.crt`,
  )
  if (site?.tls)
    say(`nginx serves https://${s.domain} with the certificate in ${path.dirname(site.tls.certificate)}`)
  else if (site) {
    say(
      `until there is a certificate nginx serves plain http: curl http://${s.domain}/_health should answer ok`,
    )
    say(`next: https (node certbot.mjs --domain ${s.domain} --email you@example.com --yes)`)
  }
  return 0
}

await runScript('frps-setup', spec, main)
