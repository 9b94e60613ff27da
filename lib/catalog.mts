// Known failure signatures, as data: what a log line (or a container state line written the same
// way, e.g. "elasticsearch exited with code 137 (OOMKilled)") looks like, which service it
// concerns, why it happens, the command that fixes it, and whether `doctor --fix` may apply it.
// Exact strings: ../shared/reference/posthog-hobby.md §8, tunnel-proxy-tls.md §3 and §6.

/** What `doctor --fix` does for a signature marked safe. Applied in the order of this list. */
export type FixAction =
  /** Run PostHog's migrations in `web` (`./bin/migrate`). */
  | 'migrate'
  /** Restart the services the evidence came from. */
  | 'restart'
  /** Start the (exited) services the evidence came from. */
  | 'start'

export const FIX_ORDER: FixAction[] = ['migrate', 'restart', 'start']

export interface Signature {
  id: string
  /** Matched against one log line (ANSI colour codes already stripped). */
  pattern: RegExp
  /** Compose services whose logs it applies to; undefined: any. */
  services?: string[]
  /** Where the line comes from when it is not a compose service: frpc, frps, nginx, certbot. */
  component?: string
  cause: string
  /** The command (or edit) that fixes it, shown to the user. `{service}` is replaced. */
  fix: string
  safe: boolean
  action?: FixAction
}

const NODE_SERVICES = [
  'plugins',
  'ingestion-general',
  'ingestion-sessionreplay',
  'recording-api',
  'ingestion-error-tracking',
  'ingestion-logs',
  'ingestion-traces',
  'cdp',
]

const RERUN_UP = 'npx tsx scripts/up.mts'

export const CATALOG: Signature[] = [
  // ---- the seed's five pitfalls ---------------------------------------------------------
  {
    id: 'redis-localhost',
    pattern: /ECONNREFUSED 127\.0\.0\.1:6379\b/,
    cause:
      'a Node service tries Redis on 127.0.0.1 inside its container (SESSION_RECORDING_API_REDIS_HOST unset)',
    fix: `set SESSION_RECORDING_API_REDIS_HOST=redis7 for {service} (the generated override does): ${RERUN_UP}`,
    safe: false,
  },
  {
    id: 's3-localhost',
    pattern: /ECONNREFUSED 127\.0\.0\.1:8333\b/,
    cause: 'a Node service tries the session-recording S3 store on 127.0.0.1 inside its container',
    fix: `point {service} at the seaweedfs service (a newer PostHog version does): ${RERUN_UP}`,
    safe: false,
  },
  {
    id: 'ses-region-missing',
    pattern: /\bRegion is missing\b/,
    cause: 'the node image builds the AWS SES client at start-up and crashes without a region',
    fix: `set SES_REGION=us-east-1 on the node services (the generated override does) or use a newer POSTHOG_NODE_TAG: ${RERUN_UP}`,
    safe: false,
  },
  {
    id: 'oom-killed',
    pattern:
      /exited with code 137\b|\bOOMKilled\b|java\.lang\.OutOfMemoryError|\bMEMORY_LIMIT_EXCEEDED\b|Memory limit \(total\) exceeded/,
    cause: '{service} ran out of memory and was killed (exit 137): its limit or Docker’s memory is too small',
    fix: 'raise {service} in MEMORY_LIMITS in .env, or give Docker more memory, then: npx tsx scripts/up.mts',
    safe: false,
  },
  {
    id: 'migration-race',
    pattern:
      /\b(?:column|relation) "?[\w.]+"? does not exist\b|\binfi_clickhouse_orm_migrations\b.*doesn't exist/,
    cause: 'the database schema is behind the code: {service} started before web finished its migrations',
    fix: 'docker compose exec -T web ./bin/migrate, then docker compose restart {service}',
    safe: true,
    action: 'migrate',
  },
  {
    id: 'worker-restarting',
    pattern:
      /container (?:is restarting|restarted \d+ times)|Worker exited prematurely: signal 9|\bWorkerLostError\b/,
    services: ['worker'],
    cause: 'the Celery worker grows until it is killed and restarts, losing its running tasks',
    fix: 'set POSTHOG_WORKER_WEB_CONCURRENCY=1, POSTHOG_CELERY_MAX_TASKS_PER_CHILD=100 and POSTHOG_CELERY_MAX_MEMORY_PER_CHILD=400000 in .env, then: npx tsx scripts/up.mts',
    safe: false,
  },
  // ---- the Caddy proxy inside the stack ------------------------------------------------
  {
    id: 'caddy-acme',
    pattern:
      /"logger":"tls\.obtain"|"msg":"obtaining certificate"|could not get certificate from issuer|"logger":"http\.acme_client"|\bhttp\.acme_client\b.*challenge failed/,
    services: ['proxy'],
    cause:
      'Caddy was given a hostname as site address and tries to get a certificate itself (nginx on the VPS does TLS)',
    fix: `serve plain http in Caddy (the generated override does): ${RERUN_UP}`,
    safe: false,
  },
  // ---- frp -------------------------------------------------------------------------------
  {
    id: 'frp-token-mismatch',
    pattern: /token in (?:login|heartbeat|NewWorkConn) doesn't match token from configuration/,
    component: 'frpc',
    cause: 'frpc and frps use different FRP_TOKEN values',
    fix: 'copy FRP_TOKEN from .env to the VPS and re-run remote/frps-setup there',
    safe: false,
  },
  {
    id: 'frp-server-refused',
    pattern: /connect to server error: dial tcp \S+: connect: connection refused/,
    component: 'frpc',
    cause: 'nothing listens on the VPS frp port: frps is down or FRP_SERVER_ADDR/FRP_SERVER_PORT are wrong',
    fix: 'on the VPS: systemctl status frps; check FRP_SERVER_ADDR and FRP_SERVER_PORT in .env',
    safe: false,
  },
  {
    id: 'frp-server-timeout',
    pattern: /connect to server error: dial tcp \S+: i\/o timeout/,
    component: 'frpc',
    cause: 'a firewall drops the connection to the VPS frp port',
    fix: 'open FRP_SERVER_PORT (7000) on the VPS firewall (ufw allow 7000/tcp) and at the provider',
    safe: false,
  },
  {
    // When frpc's TLS check of frps fails, the real frpc mostly logs only `session shutdown` (the
    // x509 reason is at trace level), sometimes the x509 error itself. `session shutdown` also
    // ends a session that was logged in when frps restarts; those lines carry frpc's run id
    // (`[0123456789abcdef] connect to ...`) and are not this.
    id: 'frp-tls-mismatch',
    pattern:
      /(?<!\[[0-9a-f]{16}\] )connect to server error: session shutdown|connect to server error: (?:tls: failed to verify certificate: )?x509: /,
    component: 'frpc',
    cause:
      'frpc refused the VPS’s tunnel certificate (usually): the pinned CA (frps-ca.crt) did not sign it, or the name frpc expects (DOMAIN, or --server-name) is not on it',
    fix: 'copy /etc/frp/tls/ca.crt from the VPS again and re-run sudo npx tsx scripts/frpc-setup.mts --frps-ca frps-ca.crt (with --server-name if frps-setup was given another --domain)',
    safe: false,
  },
  {
    id: 'frp-port-unavailable',
    pattern: /start error: port (?:unavailable|already used|not allowed)|\] error: port unavailable/,
    component: 'frpc',
    cause: 'frps cannot open FRP_REMOTE_PORT: it is taken on the VPS or outside allowPorts',
    fix: 'on the VPS: ss -ltnp | grep 12080; make FRP_REMOTE_PORT match on both sides and re-run remote/frps-setup',
    safe: false,
  },
  {
    id: 'frp-local-service',
    pattern: /connect to local service \[[^\]]+\] error/,
    component: 'frpc',
    cause: 'frpc reaches the VPS but PostHog’s proxy is not answering on 127.0.0.1:POSTHOG_PROXY_HTTP_PORT',
    fix: 'npx tsx scripts/doctor.mts (is the proxy service running?), then npx tsx scripts/up.mts',
    safe: false,
  },
  // ---- nginx on the VPS ------------------------------------------------------------------
  {
    id: 'nginx-502',
    pattern:
      /connect\(\) failed \(111: Connection refused\) while connecting to upstream|upstream prematurely closed connection while reading response header from upstream/,
    component: 'nginx',
    cause: 'nginx cannot reach PostHog through the tunnel (502): frpc is not connected or PostHog is down',
    fix: 'on the VPS: journalctl -u frps -n 50; at home: npx tsx scripts/health.mts',
    safe: false,
  },
  {
    id: 'nginx-413',
    pattern: /client intended to send too large body: \d+ bytes/,
    component: 'nginx',
    cause: 'a request body is larger than nginx’s client_max_body_size (413)',
    fix: 'set client_max_body_size 64m in the site (remote/frps-setup writes it) and reload nginx',
    safe: false,
  },
  {
    id: 'nginx-504',
    pattern: /upstream timed out \(110: Connection timed out\) while reading response header from upstream/,
    component: 'nginx',
    cause: 'PostHog answered too slowly through the tunnel (504)',
    fix: 'check the home machine’s load (npx tsx scripts/doctor.mts); proxy_read_timeout is 300 s',
    safe: false,
  },
  // ---- certbot ---------------------------------------------------------------------------
  {
    id: 'certbot-failed',
    pattern:
      /Certbot failed to authenticate some domains|Some challenges have failed|Could not automatically find a matching server block for|urn:ietf:params:acme:error:\w+/,
    component: 'certbot',
    cause:
      'Let’s Encrypt could not validate the domain: DNS does not point at the VPS, port 80 is closed, or the nginx site is missing',
    fix: 'check dig +short DOMAIN, ufw allow 80,443/tcp, then re-run remote/certbot',
    safe: false,
  },
]

export interface Match {
  signature: Signature
  line: string
}

const ANSI = /\x1b\[[0-9;]*m/g

/** The first signature that matches `line` for `service` (or for a non-compose component). */
export function matchLine(line: string, service?: string, catalog = CATALOG): Signature | undefined {
  const clean = line.replace(ANSI, '')
  return catalog.find(
    (s) => (!service || !s.services || s.services.includes(service)) && s.pattern.test(clean),
  )
}

export function describeFix(sig: Signature, service: string): string {
  return sig.fix.split('{service}').join(service)
}

export function describeCause(sig: Signature, service: string): string {
  return sig.cause.split('{service}').join(service)
}

export function isNodeService(service: string): boolean {
  return NODE_SERVICES.includes(service) || service.startsWith('ingestion-')
}
