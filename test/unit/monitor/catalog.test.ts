import { describe, expect, it } from 'vitest'
import { CATALOG, matchLine } from '../../../lib/monitor/catalog.mts'

// Upstream lines as PostHog, PostgreSQL, ClickHouse, Caddy, frp, nginx and certbot print them
// (quoted in their sources and issue trackers), written out here: no file outside the project
// is read, so this runs the same in a plain clone.
const UPSTREAM: [id: string, service: string | undefined, line: string][] = [
  ['redis-localhost', 'plugins', 'Error: connect ECONNREFUSED 127.0.0.1:6379'],
  [
    'redis-localhost',
    'recording-api',
    '[ioredis] Unhandled error event: Error: connect ECONNREFUSED 127.0.0.1:6379 at TCPConnectWrap.afterConnect',
  ],
  ['s3-localhost', 'recording-api', 'Error: connect ECONNREFUSED 127.0.0.1:8333'],
  ['ses-region-missing', 'plugins', 'Error: Region is missing'],
  ['oom-killed', 'elasticsearch', 'elasticsearch exited with code 137 (OOMKilled)'],
  ['oom-killed', 'elasticsearch', 'posthog-elasticsearch-1 exited with code 137'],
  ['oom-killed', 'elasticsearch', 'java.lang.OutOfMemoryError: Java heap space'],
  [
    'oom-killed',
    'clickhouse',
    'Code: 241. DB::Exception: Memory limit (total) exceeded: would use 3.52 GiB. (MEMORY_LIMIT_EXCEEDED)',
  ],
  ['migration-race', 'plugins', 'error: column posthog_person.last_seen_at does not exist'],
  ['migration-race', 'plugins', 'error: relation "posthog_pluginattachment" does not exist'],
  ['migration-race', 'plugins', 'error: column posthog_pluginconfig.filters does not exist'],
  ['migration-race', 'plugins', 'column posthog_pluginconfig.deleted does not exist'],
  ['worker-restarting', 'worker', 'worker container restarted 4 times'],
  [
    'worker-restarting',
    'worker',
    'billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 12.',
  ],
  [
    'caddy-acme',
    'proxy',
    '{"level":"info","ts":1754338120.642911,"logger":"tls.obtain","msg":"obtaining certificate","identifier":"ph.example.com"}',
  ],
  [
    'caddy-acme',
    'proxy',
    '2023/05/04 14:53:15.151 ERROR   tls.obtain      could not get certificate from issuer   {"identifier": "alfi.ddns.net"}',
  ],
  [
    'caddy-acme',
    'proxy',
    '2023/05/04 14:53:15.151 ERROR   http.acme_client        challenge failed        {"identifier": "alfi.ddns.net", "challenge_type": "http-01"}',
  ],
  [
    'frp-token-mismatch',
    undefined,
    "2024-05-14 17:34:40.781 [W] [client/service.go:295] connect to server error: token in login doesn't match token from configuration",
  ],
  [
    'frp-token-mismatch',
    undefined,
    "2024-05-14 17:34:40.782 [E] [root.go:150] login to the server failed: token in login doesn't match token from configuration. With loginFailExit enabled, no additional retries will be attempted",
  ],
  [
    'frp-server-refused',
    undefined,
    '2024-05-14 17:34:40.781 [W] [client/service.go:295] connect to server error: dial tcp 1.2.3.4:7000: connect: connection refused',
  ],
  ['frp-server-timeout', undefined, 'connect to server error: dial tcp 1.2.3.4:7000: i/o timeout'],
  // the real frpc 0.70.1 with a foreign CA or a wrong server name (test/e2e/frp-tunnel.test.ts)
  [
    'frp-tls-mismatch',
    undefined,
    '2026-12-02 13:09:17.424 [W] [client/service.go:322] connect to server error: session shutdown',
  ],
  [
    'frp-tls-mismatch',
    undefined,
    '2026-12-02 13:38:19.514 [W] [client/service.go:322] connect to server error: tls: failed to verify certificate: x509: certificate is valid for vps.example.com, not evil.example.com',
  ],
  [
    'frp-tls-mismatch',
    undefined,
    'connect to server error: tls: failed to verify certificate: x509: certificate signed by unknown authority',
  ],
  ['frp-port-unavailable', undefined, '2024-05-14 17:34:41.000 [W] [posthog] start error: port unavailable'],
  ['frp-port-unavailable', undefined, 'new proxy [posthog] type [tcp] error: port unavailable'],
  ['frp-port-unavailable', undefined, '[posthog] start error: port not allowed'],
  [
    'frp-local-service',
    undefined,
    '2024-05-14 17:35:02.100 [W] [proxy/proxy.go:204] [a1b2c3] [posthog] connect to local service [127.0.0.1:18000] error: dial tcp 127.0.0.1:18000: connect: connection refused',
  ],
  [
    'nginx-502',
    undefined,
    '2026/11/25 10:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4, server: ph.example.com, request: "GET /_health HTTP/1.1", upstream: "http://127.0.0.1:12080/_health", host: "ph.example.com"',
  ],
  [
    'nginx-502',
    undefined,
    '2026/11/25 10:00:00 [error] 1234#1234: *7 upstream prematurely closed connection while reading response header from upstream, client: 1.2.3.4',
  ],
  [
    'nginx-413',
    undefined,
    '2026/11/25 10:00:00 [error] 1234#1234: *9 client intended to send too large body: 31457280 bytes, client: 1.2.3.4, server: ph.example.com',
  ],
  [
    'nginx-504',
    undefined,
    '2026/11/25 10:00:00 [error] 1234#1234: *3 upstream timed out (110: Connection timed out) while reading response header from upstream',
  ],
  [
    'certbot-failed',
    undefined,
    'Certbot failed to authenticate some domains (authenticator: nginx). The Certificate Authority reported these problems:',
  ],
  ['certbot-failed', undefined, 'Some challenges have failed.'],
  [
    'certbot-failed',
    undefined,
    'Could not automatically find a matching server block for ph.example.com. Set the `server_name` directive to use the Nginx installer.',
  ],
  ['certbot-failed', undefined, 'urn:ietf:params:acme:error:accountDoesNotExist'],
  // ---- day two (the upstream source or issue is named in each entry of lib/monitor/catalog.mts) ----
  [
    'redis-localhost',
    'recording-api',
    '{"level":"error","time":1775400000000,"pid":1,"hostname":"0c6f1d2e3a4b","msg":"[RECORDING-API] 😡 [recording-api] Redis error encountered! host: 127.0.0.1:6379 Enough of this, I quit!"}',
  ],
  [
    // nodejs/src/utils/db/redis.ts before connection names: the Error is joined into msg.
    'redis-tls-timeout',
    'plugins',
    '{"level":"error","time":1758600000000,"pid":1,"hostname":"4c1d8e2f6a3b","msg":"[PLUGIN-SERVER] 🔴 Redis error encountered! Trying to reconnect...\\n Error: connect ETIMEDOUT"}',
  ],
  [
    // ...and after: ioredis' error (errorno/code/syscall ETIMEDOUT) in its own key, before msg.
    'redis-tls-timeout',
    'ingestion-logs',
    '{"level":"error","time":1780380000000,"pid":1,"hostname":"9f1c2d3e4b5a","error":{"errorno":"ETIMEDOUT","code":"ETIMEDOUT","syscall":"connect"},"msg":"[INGESTION-LOGS] 🔴 [logs-redis] Redis error encountered! host: redis7:6379 Trying to reconnect..."}',
  ],
  ['redis-tls-timeout', 'cdp', '[ioredis] Unhandled error event: Error: connect ETIMEDOUT'],
  [
    'postgres-major-mismatch',
    'db',
    '2024-09-05 16:51:04.534 UTC [1] FATAL:  database files are incompatible with server',
  ],
  [
    'postgres-major-mismatch',
    'db',
    '2024-09-05 16:51:04.534 UTC [1] DETAIL:  The data directory was initialized by PostgreSQL version 12, which is not compatible with this version 15.12.',
  ],
  [
    'kafka-no-assignment',
    'clickhouse',
    "2024.11.12 00:02:09.261606 [ 1825 ] {} <Warning> StorageKafka (kafka_plugin_log_entries): Can't get assignment. Will keep trying.",
  ],
  [
    'kafka-no-assignment',
    'clickhouse',
    "2021.03.15 10:00:00.000000 [ 77 ] {} <Warning> StorageKafka (kafka_events_json): Can't get assignment. It can be caused by some issue with consumer group (not enough partitions?). Will keep trying.",
  ],
  [
    'replay-no-recordings',
    'livestream',
    '2025/12/31 02:16:08 Session recording consumer: 47940 timeouts so far (topic: session_recording_snapshot_item_events)',
  ],
  [
    'csrf-behind-proxy',
    'web',
    '2026-11-25T10:00:00.123456Z [warning  ] Forbidden (Origin checking failed - https://ph.example.com does not match any trusted origins.): /api/login [django.security.csrf] pid=12 tid=140234',
  ],
  ['csrf-behind-proxy', 'web', 'Forbidden (CSRF cookie not set.): /api/signup'],
  [
    'csrf-behind-proxy',
    undefined,
    '{"detail":"CSRF Failed: Origin checking failed - https://ph.example.com does not match any trusted origins."}',
  ],
  [
    'encryption-key-invalid',
    'plugins',
    '{"level":"error","time":1728490554991,"pid":36,"hostname":"f01ec11b8962","error":"Error: Key must be 32-byte long base64url encoded string.\\n    at Fernet.checkKey (/code/plugin-server/node_modules/.pnpm/fernet-nodejs@1.0.6/node_modules/fernet-nodejs/dist/Fernet.js:28:19)"}',
  ],
  ['encryption-key-invalid', 'web', 'ValueError: Fernet key must be 32 url-safe base64-encoded bytes.'],
  ['default-secret-key', 'web', '[ERROR] Default SECRET_KEY in production. Stopping Django server…'],
  [
    'default-secret-key',
    'worker',
    '            You are using the default SECRET_KEY in a production environment!',
  ],
]

// Harmless lines that look similar and must not match anything.
const LOOK_ALIKES: [service: string | undefined, line: string][] = [
  ['plugins', 'connected to redis at redis7:6379'],
  ['plugins', 'Error: connect ECONNREFUSED 127.0.0.1:63790'],
  ['plugins', 'SES region set to us-east-1'],
  ['elasticsearch', 'elasticsearch exited with code 0'],
  ['elasticsearch', 'posthog-elasticsearch-1 exited with code 1370'],
  ['web', 'Operations to perform: Apply all migrations: posthog'],
  ['web', 'CREATE TABLE IF NOT EXISTS posthog_person'],
  ['web', 'relation "posthog_person" already exists, skipping'],
  ['plugins', 'plugins container restarted 4 times'],
  ['worker', 'celery@worker ready.'],
  ['worker', 'Restarting Celery worker pool after settings change'],
  [
    'proxy',
    '{"level":"info","logger":"http.auto_https","msg":"automatic HTTPS is completely disabled for server","server_name":"srv0"}',
  ],
  ['web', 'tls.obtain is a config key documented here'],
  [undefined, '2024-05-14 17:34:40.781 [I] [client/service.go:294] try to connect to server...'],
  [undefined, 'login to server success, get run id [a1b2c3d4]'],
  // frps restarting under a logged-in frpc (the real frpc 0.70.1): not a certificate problem
  [
    undefined,
    '2026-12-02 13:41:39.071 [W] [client/service.go:322] [891e66aa51116caf] connect to server error: session shutdown',
  ],
  [undefined, '[posthog] start proxy success'],
  [undefined, 'Certificate not yet due for renewal'],
  [undefined, 'Congratulations! You have successfully enabled HTTPS on https://ph.example.com'],
  [undefined, '127.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET /_health HTTP/1.1" 200 2 "-" "curl/8.0"'],
  [undefined, 'health check status change to success'],
  // ---- day two ----
  ['plugins', '{"level":"info","msg":"[PLUGIN-SERVER] ✅ [posthog-redis] Connected to Redis! redis7:6379"}'],
  ['plugins', 'KafkaJSConnectionError: Connection timeout: connect ETIMEDOUT 172.18.0.5:9092'],
  [
    'plugins',
    '{"level":"error","msg":"[PLUGIN-SERVER] 🔴 Redis error encountered! host: redis7:6379 Trying to reconnect...","error":{"code":"ECONNRESET"}}',
  ],
  ['web', 'redis ETIMEDOUT while the web service was starting'],
  ['db', 'PostgreSQL Database directory appears to contain a database; Skipping initialization'],
  ['db', '2024-09-05 16:51:04.534 UTC [1] LOG:  starting PostgreSQL 15.12 on x86_64-pc-linux-musl'],
  [
    'clickhouse',
    '2024.11.12 00:02:09.261606 [ 1825 ] {} <Debug> StorageKafka (kafka_events_json): Polled batch of 12 messages. Offsets position: [ events_plugin_ingestion[0:1234] ]',
  ],
  [
    'livestream',
    '2025/12/31 02:16:08 Session recording consumer subscribed to topic: session_recording_snapshot_item_events',
  ],
  [
    'web',
    '2026-11-25T10:00:00.123456Z [warning  ] Forbidden: /api/projects/1/insights/ [django.request] pid=12 tid=140234',
  ],
  ['web', 'CSRF_TRUSTED_ORIGINS=https://ph.example.com'],
  ['plugins', 'Existing ENCRYPTION_SALT_KEYS is correctly formatted'],
  ['web', 'SECRET_KEY read from the environment (56 characters)'],
]

describe('failure catalog', () => {
  it.each(UPSTREAM)('%s matches %j: %s', (id, service, line) => {
    expect(matchLine(line, service)?.id).toBe(id)
  })

  it.each(LOOK_ALIKES)('%j: %s matches nothing', (service, line) => {
    expect(matchLine(line, service)?.id).toBeUndefined()
  })

  it('covers every signature with at least one upstream line', () => {
    const covered = new Set(UPSTREAM.map(([id]) => id))
    expect(CATALOG.map((s) => s.id).filter((id) => !covered.has(id))).toEqual([])
  })

  it('gives every signature a cause and a fix, and an action to every safe one', () => {
    for (const s of CATALOG) {
      expect(s.cause.length, s.id).toBeGreaterThan(10)
      expect(s.fix.length, s.id).toBeGreaterThan(5)
      if (s.safe) expect(s.action, s.id).toBeDefined()
    }
  })

  it('strips colour codes before matching', () => {
    expect(matchLine('\x1b[31mError: Region is missing\x1b[0m', 'plugins')?.id).toBe('ses-region-missing')
  })
})
