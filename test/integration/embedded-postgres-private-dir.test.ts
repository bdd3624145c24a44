/**
 * The embedded Postgres started as root from a clone the `postgres` user cannot enter (a
 * private home, as /root is): its data goes to a folder in Postgres's own home instead, and
 * initdb, running as `postgres`, must be able to get there. The folder above it was once made
 * root's and private, and the stack never came up.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../infra/postgres';
import { loadConfig } from '../../src/config';
import { freePort } from '../helpers/hunt-command';

const asRoot = process.getuid?.() === 0;
// mkdtemp makes the folder 0700 and root's: the server's user cannot enter it.
const privateHome = asRoot ? fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-private-home-')) : '';
const stateDir = path.join(privateHome, 'state');
let postgres: EmbeddedPostgres | undefined;
const FALLBACK_PARENT = '/var/lib/postgresql/treasure-hunt';

afterAll(async () => {
  await postgres?.down();
  const dataDirFile = path.join(stateDir, 'postgres', 'DATA_DIR');
  if (fs.existsSync(dataDirFile)) fs.rmSync(fs.readFileSync(dataDirFile, 'utf8').trim(), { recursive: true, force: true });
  if (privateHome) fs.rmSync(privateHome, { recursive: true, force: true });
});

describe.skipIf(!asRoot)('embedded Postgres in a folder its user cannot enter (as root)', () => {
  it('comes up with its data in Postgres\'s home, and serves', async () => {
    expect(fs.statSync(privateHome).mode & 0o077).toBe(0);
    // As on a new machine, when no other stack has made it (rmdir takes only an empty folder).
    try {
      fs.rmdirSync(FALLBACK_PARENT);
    } catch {
      // Absent, or holding another stack's data: left alone.
    }
    const config = loadConfig({ ...process.env, HUNT_STATE_DIR: stateDir, HUNT_PG_PORT: String(await freePort()), DATABASE_URL: '' });
    postgres = new EmbeddedPostgres(config);

    const status = await postgres.up();

    expect(status).toMatchObject({ state: 'up', version: expect.stringContaining('PostgreSQL') });
    const dataDir = fs.readFileSync(path.join(stateDir, 'postgres', 'DATA_DIR'), 'utf8').trim();
    expect(path.dirname(dataDir)).toBe(FALLBACK_PARENT);
    expect(fs.existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
  });
});
