// down: stops the stack and keeps every volume. `--volumes` deletes the data, only after listing
// the volumes it will delete and a typed confirmation (the project name) or --yes.
import fs from 'node:fs'
import path from 'node:path'
import { defineScript, type Flags, RuntimeFailure, runScript, say, UsageError } from '../lib/core/cli.mts'
import { compose, PROJECT_NAME, projectVolumes } from '../lib/core/docker.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { fingerprintFile } from '../lib/core/secrets.mts'
import { stackLockDir } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/down.mts [--volumes [--yes]]',
  summary:
    'Stops PostHog and removes its containers; every volume (the data) is kept. With --volumes the data is deleted too.',
  flags: {
    volumes: {
      type: 'boolean',
      help: 'also DELETE the volumes (every event, person and setting); asks you to type the project name',
    },
    // No environment fallback on purpose: deleting data must be asked for on the command line.
    yes: {
      type: 'boolean',
      help: 'skip the typed confirmation of --volumes (needed without a terminal)',
    },
    'env-file': ENV_FILE_FLAG,
  },
  notes: 'Start again with: npx tsx scripts/up.mts',
})

/** Stop timeout per container: PostgreSQL and ClickHouse get time to shut down cleanly. */
const STOP_TIMEOUT_S = '60'

/** Typed confirmation on a TTY; --yes without one; refusal (exit 2) otherwise. */
async function confirmDeletion(yes: boolean): Promise<void> {
  if (yes) return
  if (!process.stdin.isTTY)
    throw new UsageError(
      'refusing to delete volumes without a terminal to confirm on: pass --yes; nothing was deleted',
    )
  const { createInterface } = await import('node:readline/promises')
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    const answer = await rl.question(`Type the project name (${PROJECT_NAME}) to delete these volumes: `)
    if (answer.trim() !== PROJECT_NAME)
      throw new UsageError(`'${answer.trim()}' is not '${PROJECT_NAME}'; nothing was deleted`)
  } finally {
    rl.close()
  }
}

async function main(flags: Flags<typeof spec.flags>): Promise<number> {
  const cfg = loadConfig({ envFile: flags['env-file'] })
  if (!fs.existsSync(path.join(cfg.stackDir, 'docker-compose.yml'))) {
    say(`no stack in ${cfg.stackDir} (no docker-compose.yml): nothing to stop`)
    return 0
  }
  let volumes: string[] = []
  if (flags.volumes) {
    volumes = await projectVolumes()
    if (volumes.length) {
      say(
        `--volumes will DELETE ${volumes.length} volume${volumes.length > 1 ? 's' : ''} and the data in them:`,
      )
      for (const v of volumes) say(`  ${v}`)
      await confirmDeletion(flags.yes)
    } else say('no volumes of this stack exist; stopping only')
  }
  const release = acquireLock(stackLockDir(cfg))
  try {
    const args = ['down', '--timeout', STOP_TIMEOUT_S, ...(volumes.length ? ['--volumes'] : [])]
    const out = await compose(cfg.stackDir, args, { timeout: '10m', nothrow: true })
    if (!out.ok)
      throw new RuntimeFailure(
        `docker compose down failed: ${out.stderr.trim().split('\n').at(-1) ?? out.exitCode}`,
        'check that Docker is running and try again',
      )
    if (volumes.length) {
      // The data is gone: the next up may generate or accept new secrets.
      fs.rmSync(fingerprintFile(cfg.stackDir), { force: true })
      say(`stopped PostHog and deleted ${volumes.length} volume${volumes.length > 1 ? 's' : ''}`)
    } else say('stopped PostHog; every volume (your data) is kept. Start again with: npx tsx scripts/up.mts')
    return 0
  } finally {
    release()
  }
}

await runScript('down', spec, main)
