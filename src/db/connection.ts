// Opening the SQLite file: WAL so that readers never wait on the reconciler's writes, a busy timeout so that the CLI
// and the server can share the file, foreign keys on. Migrations are applied here, before anything else runs.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import * as coreSchema from './schema.js';
import * as governanceSchema from '../governance/schema.js';
import { fail } from '../errors.js';

const schema = { ...coreSchema, ...governanceSchema };

export type Db = BetterSQLite3Database<typeof schema> & { $client: Database.Database };

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/** Residents' data and password hashes live in the file, its WAL and SHM: readable by cattery's user only. */
function restrict(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
}

export function openDb(file: string): Db {
  if (file !== ':memory:') {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Created before its first write with the right mode, whatever the process umask.
    if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  }
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  if (file !== ':memory:') restrict(file);
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('synchronous = NORMAL');
  return drizzle(sqlite, { schema }) as Db;
}

/** Apply pending migrations; a failure is fatal to start-up and says which migration and why. */
export function applyMigrations(db: Db, migrationsFolder = MIGRATIONS_DIR): void {
  try {
    migrate(db, { migrationsFolder });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw fail('CATTERY_ERR_MIGRATION', `${msg} (migrations folder: ${migrationsFolder})`, err);
  }
}
