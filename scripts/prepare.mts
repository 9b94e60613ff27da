// Step script: gets PostHog's compose files and mounted configs at POSTHOG_APP_TAG and writes
// everything STACK_DIR needs (override, env file, compose scripts, share/). Safe to re-run.
import path from 'node:path'
import { defineScript, runScript, say } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { ensureEnvFile, planEnvFile } from '../lib/core/env-file.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { assertSecretsUnchanged, refuseNewSecretsOnStartedStack } from '../lib/core/secrets.mts'
import { NO_GEOIP_FLAG, prepareStack } from '../lib/stack/prepare.mts'
import { stackLockDir } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/prepare.mts [--no-geoip] [--env-file FILE] [--accept-new-secrets]',
  summary:
    'Fetches PostHog (POSTHOG_APP_TAG of POSTHOG_REPO_URL) into STACK_DIR/posthog with stock git: one commit,\n' +
    'without blobs, checked out sparsely on only the files the stack reads (the compose files and the env files\n' +
    'and paths they name), and writes STACK_DIR: the compose files, docker-compose.override.yml, the env file\n' +
    'Compose reads, compose/ scripts and share/. Creates .env with new secrets when there is none. Changes nothing\n' +
    'that is already right; docker-compose.local.yml (your own changes) is never touched.',
  notes: [
    'Versions: a branch (latest included) is resolved once to its newest commit whose images are published and',
    'stays there, for the checkout and every PostHog image tag (STACK_DIR/posthog-version.json), until',
    "'upgrade --to <branch>' moves it. A re-run for the version already prepared works without the network.",
    'Environment knobs:',
    '  HOMELAB_FETCH_RETRIES=4, HOMELAB_FETCH_BACKOFF=2s  network retries, exponential backoff from this delay',
    '  GEOIP_URL=https://mmdbcdn.posthog.net/  where the GeoLite2-City database (brotli) comes from',
    'Exit codes: 0 ok, 1 fetch or write failed (network, refused by the server, hand-edited file), 2 bad .env,',
    'unknown ref, refused service.',
  ].join('\n'),
  flags: {
    'no-geoip': NO_GEOIP_FLAG,
    'env-file': ENV_FILE_FLAG,
    'accept-new-secrets': {
      type: 'boolean',
      help: 'go on although the secrets differ from the ones the stack was first started with',
    },
  },
})

await runScript('prepare', spec, async (flags) => {
  const envFile = flags['env-file']
  refuseNewSecretsOnStartedStack(planEnvFile({ envFile }), flags['accept-new-secrets'])
  const ensured = ensureEnvFile({ envFile })
  if (ensured.created) say(`created ${envFile} from .env.example with newly generated secrets`)
  else if (ensured.generated.length) say(`generated ${ensured.generated.join(' and ')} in ${envFile}`)
  const cfg = loadConfig({ envFile })
  assertSecretsUnchanged(cfg, flags['accept-new-secrets'])
  const stack = path.relative(process.cwd(), cfg.stackDir) || '.'
  // The same lock as up, down, upgrade and restore: never rewrite STACK_DIR under a running step.
  const release = acquireLock(stackLockDir(cfg))
  let res: Awaited<ReturnType<typeof prepareStack>>
  try {
    res = await prepareStack(cfg, { geoip: !flags['no-geoip'], log: say })
  } finally {
    release()
  }
  for (const notice of res.notices) say(`notice: ${notice}`)
  for (const line of res.switchedOff) say(`switched off: ${line}`)
  const where = `PostHog ${cfg.appTag} at ${res.commit.slice(0, 12)}`
  const services = `${res.enabledServices.length} of ${res.services.length} services enabled`
  if (res.changed.length === 0) say(`${stack} is up to date (${where}, ${services}); nothing changed`)
  else say(`${stack} prepared (${where}, ${services}); changed: ${res.changed.join(', ')}`)
  return 0
})
