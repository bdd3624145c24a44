/**
 * infra/install-system-packages.sh (run by `npm start`, `npm test` and CI) stops the Postgres
 * cluster Debian's package starts on install, and no other: not one that was online before,
 * which may be the very one DATABASE_URL names. Run with stand-ins for apt and Debian's
 * cluster tools first on PATH, and nothing else of the machine's but a shell's basic tools.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';

const script = path.resolve(__dirname, '../../infra/install-system-packages.sh');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs the script for `start` with `env`; returns the stand-ins' record of what they were asked. */
async function install(options: { postgresInstalled: boolean; env: Record<string, string> }): Promise<{ stopped: string[]; installed: string[]; stdout: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hunt-install-'));
  dirs.push(dir);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const tool of ['bash', 'awk', 'grep', 'cat', 'touch', 'sleep']) {
    const { stdout } = await promisify(execFile)('sh', ['-c', `command -v ${tool}`]);
    fs.symlinkSync(stdout.trim(), path.join(bin, tool));
  }
  const stub = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!${path.join(bin, 'bash')}\n${body}\n`, { mode: 0o755 });
  stub('id', 'echo 0'); // root: no sudo
  stub('ls', options.postgresInstalled ? 'exit 0' : 'exit 2');
  stub('apt-get', `echo "$*" >> ${dir}/apt.log; [ "$1" = install ] && touch ${dir}/installed; exit 0`);
  // A cluster online before; after the install, one more (Debian's package starts its own).
  stub('pg_lsclusters', `echo "15 main 5432 online postgres /var/lib/postgresql/15/main -"; [ -e ${dir}/installed ] && echo "15 fresh 5433 online postgres /var/lib/postgresql/15/fresh -"; exit 0`);
  stub('pg_ctlcluster', `echo "$*" >> ${dir}/stopped.log`);
  const { stdout } = await promisify(execFile)(path.join(bin, 'bash'), [script, 'start'], { env: { PATH: bin, ...options.env } });
  const lines = (file: string) => (fs.existsSync(path.join(dir, file)) ? fs.readFileSync(path.join(dir, file), 'utf8').trim().split('\n') : []);
  return { stopped: lines('stopped.log'), installed: lines('apt.log').filter((l) => l.startsWith('install')), stdout };
}

const outside = { DATABASE_URL: 'postgres://hunt@db.example/hunt', KAFKA_BROKERS: 'kafka.example:9092', TEMPORAL_ADDRESS: 'temporal.example:7233' };

describe('install-system-packages.sh', () => {
  it('stops no Postgres cluster when it installs no Postgres', async () => {
    const { DATABASE_URL, TEMPORAL_ADDRESS } = outside;
    const run = await install({ postgresInstalled: true, env: { DATABASE_URL, TEMPORAL_ADDRESS } });
    expect(run.installed).toEqual([expect.stringMatching(/openjdk-17-jre-headless maven$/)]);
    expect(run.stopped).toEqual([]);
  });

  it("stops the cluster Debian's package started, not one online before", async () => {
    const { KAFKA_BROKERS, TEMPORAL_ADDRESS } = outside;
    const run = await install({ postgresInstalled: false, env: { KAFKA_BROKERS, TEMPORAL_ADDRESS } });
    expect(run.installed).toEqual([expect.stringMatching(/ postgresql$/)]);
    expect(run.stopped).toEqual(['15 fresh stop']);
    expect(run.stdout).toContain('stopping the Postgres cluster 15/fresh');
  });
});
