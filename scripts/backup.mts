// Backs up what cannot be regenerated: .env and PostgreSQL (and ClickHouse with --clickhouse)
// into BACKUP_DIR/<timestamp>/ with a manifest, then keeps the newest BACKUP_KEEP backups.

import { defineScript, runScript, say } from '../lib/core/cli.mts'
import { ENV_FILE_FLAG, loadConfig } from '../lib/core/env.mts'
import { acquireLock } from '../lib/core/lock.mts'
import { backupSettings, displayPath, formatBytes, takeBackup } from '../lib/ops/backup.mts'
import { stackLockDir } from '../lib/stack/startup.mts'

const spec = defineScript({
  usage: 'npx tsx scripts/backup.mts [--clickhouse]',
  summary:
    'Backs up .env and the PostgreSQL database (pg_dump, custom format) into BACKUP_DIR/<timestamp>/ with a manifest of sizes and SHA-256 sums, then removes all but the newest BACKUP_KEEP backups.',
  flags: {
    clickhouse: {
      type: 'boolean',
      env: 'BACKUP_CLICKHOUSE',
      help: "also run ClickHouse's native BACKUP (large; needs the /backups mount, see docs/operations.md)",
    },
    'env-file': ENV_FILE_FLAG,
  },
  notes: 'Restore with: npx tsx scripts/restore.mts --from <timestamp>',
})

await runScript('backup', spec, async (flags) => {
  const cfg = loadConfig({ envFile: flags['env-file'] })
  const release = acquireLock(stackLockDir(cfg))
  try {
    const { keep } = backupSettings(cfg)
    const result = await takeBackup(cfg, { clickhouse: flags.clickhouse, log: say })
    const total = result.manifest.files.reduce((n, f) => n + f.size, 0)
    say(`backup written: ${displayPath(result.dir)} (${formatBytes(total)})`)
    if (result.removed.length) say(`removed old backups (keeping ${keep}): ${result.removed.join(', ')}`)
    return 0
  } finally {
    release()
  }
})
