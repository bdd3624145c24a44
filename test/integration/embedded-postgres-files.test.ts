/**
 * The embedded Postgres started as root: its service folder (log and pid files, written by
 * root) stays root's, only the data folder is the `postgres` user's, and a symbolic link where
 * a log or pid file goes is refused. That folder was once `postgres`'s, and a local user who
 * became `postgres` (the trust-auth superuser can run programs: docs/security.md) could point
 * the log at a file of root's for the next `stack up` to append to.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgres } from '../../infra/postgres';
import { loadConfig } from '../../src/config';
import { isAlive, pidFileText, startTimeOf } from '../../infra/process';
import { freePort } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';

const asRoot = process.getuid?.() === 0;
const stateDir = asRoot ? fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-pg-files-')) : '';
const serviceDir = path.join(stateDir, 'postgres');
let postgres: EmbeddedPostgres | undefined;
let cleanupBystander = () => undefined as unknown;

afterAll(async () => {
  cleanupBystander();
  await postgres?.down();
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(!asRoot)('the embedded Postgres\'s files (as root)', () => {
  it('keeps its service folder root\'s, takes back one given to postgres, and refuses a link for its log', async () => {
    // mkdtemp makes the folder private; the server's user must get through it to the data.
    fs.chmodSync(stateDir, 0o755);
    const config = loadConfig({ ...process.env, HUNT_STATE_DIR: stateDir, HUNT_PG_PORT: String(await freePort()), DATABASE_URL: '' });
    postgres = new EmbeddedPostgres(config);
    expect(await postgres.up()).toMatchObject({ state: 'up' });
    const postgresUid = fs.statSync(path.join(serviceDir, 'data')).uid;
    expect(postgresUid).not.toBe(0);
    expect(fs.statSync(serviceDir).uid).toBe(0);
    await postgres.down();

    // As an older version left it: the folder postgres's, and a link in it where the log goes.
    fs.chownSync(serviceDir, postgresUid, postgresUid);
    const rootsFile = path.join(stateDir, 'roots-file');
    fs.writeFileSync(rootsFile, 'root only\n', { mode: 0o600 });
    fs.renameSync(path.join(serviceDir, 'postgres.log'), path.join(serviceDir, 'postgres.log.old'));
    fs.symlinkSync(rootsFile, path.join(serviceDir, 'postgres.log'));
    await expect(postgres.up()).rejects.toThrow(/postgres\.log is a symbolic link: remove it/);
    expect(fs.readFileSync(rootsFile, 'utf8')).toBe('root only\n');
    expect(fs.statSync(serviceDir).uid).toBe(0);

    fs.rmSync(path.join(serviceDir, 'postgres.log'));

    // A pipe where the log goes is refused (opening it would wait for a reader for ever), and
    // refused before the server starts: nothing is left running unrecorded.
    execFileSync('mkfifo', [path.join(serviceDir, 'postgres.log')]);
    await expect(postgres.up()).rejects.toThrow(/postgres\.log is not a plain file: remove it/);
    expect((await postgres.status()).state).toBe('down');
    fs.rmSync(path.join(serviceDir, 'postgres.log'));

    // A pid file another user left, naming a process of root's: not taken for the server (not
    // stopped by `down`, not waited on by `up`), and made anew, root's.
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    cleanupBystander = () => bystander.kill('SIGKILL');
    const bystanderPid = bystander.pid as number;
    await waitFor('the bystander to run', () => startTimeOf(bystanderPid) !== undefined);
    fs.writeFileSync(path.join(serviceDir, 'postgres.pid'), pidFileText(bystanderPid));
    fs.chownSync(path.join(serviceDir, 'postgres.pid'), postgresUid, postgresUid);
    expect((await postgres.down()).state).toBe('down');
    expect(isAlive(bystanderPid)).toBe(true);
    fs.writeFileSync(path.join(serviceDir, 'postgres.pid'), pidFileText(bystanderPid));
    fs.chownSync(path.join(serviceDir, 'postgres.pid'), postgresUid, postgresUid);
    expect(await postgres.up()).toMatchObject({ state: 'up' });
    expect(isAlive(bystanderPid)).toBe(true);
    expect(fs.statSync(path.join(serviceDir, 'postgres.pid')).uid).toBe(0);
    expect(fs.statSync(path.join(serviceDir, 'postgres.log')).uid).toBe(0);
  }, 120_000);
});
