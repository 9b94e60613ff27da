// Known failure signatures, as data: what a log line (or a container state line written the same
// way, e.g. "elasticsearch exited with code 137 (OOMKilled)") looks like, which service it
// concerns, why it happens, the command that fixes it, and whether `doctor --fix` may apply it.
// The strings are exact: copied from the logs of PostHog's services, frp, nginx and certbot.

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
  // ---- the five runtime pitfalls of the trimmed hobby stack ----------------------------------
  {
    id: 'redis-localhost',
    // Newer node images name the host in their own line: "... Redis error encountered! host: 127.0.0.1:6379 ...".
    pattern: /ECONNREFUSED 127\.0\.0\.1:6379\b|Redis error encountered! host: 127\.0\.0\.1:6379\b/,
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
  // ---- after the first start: what self-hosters hit on day two ---------------------------
  // Exact lines: the upstream sources and PostHog/posthog issues named in each comment.
  {
    // nodejs/src/utils/db/redis.ts logs every ioredis error; a TLS handshake against the plain
    // redis7 times out (ETIMEDOUT, not ECONNREFUSED) and after ten the service quits (#38494, #61109).
    id: 'redis-tls-timeout',
    pattern:
      /Redis error encountered!.*\bETIMEDOUT\b|\bETIMEDOUT\b.*Redis error encountered!|\[ioredis\] Unhandled error event: Error: connect ETIMEDOUT/,
    services: NODE_SERVICES,
    cause:
      '{service} talks TLS to the plain redis7 and times out: the node image defaults LOGS_REDIS_TLS, TRACES_REDIS_TLS (and in older images CDP_REDIS_TLS) to true in production',
    fix: `set LOGS_REDIS_TLS=false, TRACES_REDIS_TLS=false and CDP_REDIS_TLS=false on the node services (the generated override does), then: ${RERUN_UP}`,
    safe: false,
  },
  {
    // PostgreSQL's own start-up check (miscinit.c), logged by the db container on an old volume.
    id: 'postgres-major-mismatch',
    pattern:
      /FATAL: +database files are incompatible with server|The data directory was initialized by PostgreSQL version \d+, which is not compatible with this version/,
    services: ['db'],
    cause:
      'the db image is a newer PostgreSQL major version than the one that wrote its volume; PostgreSQL cannot read it without a dump and restore',
    fix: 'go back to the previous version (npx tsx scripts/upgrade.mts --rollback, or pin the old db image in docker-compose.local.yml), then upgrade with --postgres-major: it backs up, keeps the old volume aside and restores into the new major',
    safe: false,
  },
  {
    // ClickHouse's Kafka engine (StorageKafka) when its consumer gets no partitions (#26139, #58151).
    id: 'kafka-no-assignment',
    pattern: /Can't get assignment\..*Will keep trying/,
    services: ['clickhouse'],
    cause:
      'ClickHouse’s Kafka tables (the consumers that move events from Kafka into ClickHouse) get no partitions, typically after an upgrade: their topics are missing or the consumer group still holds the old members. Harmless if new events still show up',
    fix: 'if new events stopped arriving: docker compose up -d --force-recreate kafka-init (creates the topics), then docker compose up -d --force-recreate clickhouse (its consumers join again)',
    safe: false,
  },
  {
    // livestream/events/session_recording_consumer.go: one line at the first and every 60th
    // one-second Kafka poll that brought no recording, counted since livestream started (#44105).
    id: 'replay-no-recordings',
    pattern: /Session recording consumer: \d+ timeouts so far \(topic: /,
    services: ['livestream'],
    cause:
      'livestream’s recordings consumer keeps finding no new session recordings in Kafka (its count of empty one-second polls since it started). Harmless while nobody is recorded; if recordings are missing, none reach Kafka',
    fix: 'if recordings are missing: keep replay-capture out of DISABLED_SERVICES, check that /s/ answers (npx tsx scripts/health.mts) and that session recording is on in the project settings; recordings that are listed but do not play are a recording-api/object storage problem',
    safe: false,
  },
  {
    // Django's CSRF middleware (logger django.security.csrf) and DRF's SessionAuthentication 403
    // body, behind a proxy that does not pass the scheme or the host on (#17761, #18406).
    id: 'csrf-behind-proxy',
    pattern:
      /\bCSRF Failed: |\bForbidden \((?:Origin checking failed - \S+ does not match any trusted origins|Referer checking failed - |CSRF cookie not set|CSRF token (?:missing|incorrect))/,
    services: ['web'],
    cause:
      'Django rejects the login or an API write (403 CSRF Failed), or sends the browser back to /login in a loop: a proxy in front does not pass Host and X-Forwarded-Proto: https, so the origin PostHog computes is not the https://DOMAIN the browser uses',
    fix: 'open PostHog only as https://DOMAIN (SITE_URL); every proxy in front of nginx must keep the Host header and send X-Forwarded-Proto: https (nginx: proxy_set_header X-Forwarded-Proto https); a CSRF_TRUSTED_ORIGINS setting helps only on PostHog versions that read it',
    safe: false,
  },
  {
    // fernet-nodejs checkKey in the node services (PR #25483) and Python cryptography's Fernet.
    id: 'encryption-key-invalid',
    pattern:
      /Key must be 32-byte long base64url encoded string|Fernet key must be 32 url-safe base64-encoded bytes/,
    cause:
      '{service} cannot use ENCRYPTION_SALT_KEYS: it is not 32 characters of A-Z a-z 0-9 _ - (a key from an older PostHog installer, or one set outside .env, e.g. in docker-compose.local.yml) (#25521)',
    fix: `set ENCRYPTION_SALT_KEYS in .env to 32 such characters (prepare checks it; empty generates one) and remove any other setting of it, then: ${RERUN_UP} (with --accept-new-secrets if it changed)`,
    safe: false,
  },
  {
    // posthog/settings/access.py stops Django when SECRET_KEY is the built-in default (#22819).
    id: 'default-secret-key',
    pattern: /Default SECRET_KEY in production|using the default SECRET_KEY in a production environment/,
    cause:
      '{service} got no SECRET_KEY (POSTHOG_SECRET did not reach it) and Django refuses to run with its built-in default',
    fix: `keep POSTHOG_SECRET set in .env (prepare generates one on a new install; on an existing one restore the original value, e.g. from a backup’s .env: sessions and encrypted data depend on it), then: ${RERUN_UP}`,
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
