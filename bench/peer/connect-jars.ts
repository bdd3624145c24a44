/**
 * Fetches the Connect peer's jars from Maven Central once: the worker's classpath (Kafka
 * Connect 3.9.1) and a plugin.path folder holding the Debezium JDBC sink, as two profiles of
 * bench/peer/pom.xml. Cached under ~/.cache/treasure-hunt/connect-peer/ in a folder named
 * after the POM's hash, so editing the POM fetches again and an unchanged one costs a stat.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileAsync, onPath } from '../../infra/process';
import { MissingToolError } from '../../infra/service';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const POM = path.join(HERE, 'pom.xml');
// Mirrors every repository to Central: Debezium's parent POM names one this machine cannot reach.
const SETTINGS = path.join(HERE, 'settings.xml');

/** The plugin's folder name inside plugin.path (Connect gives each folder its own class loader). */
const PLUGIN_NAME = 'debezium-connector-jdbc';

export interface ConnectJars {
  /** Folder of the worker's jars: `java -cp <workerDir>/*`. */
  workerDir: string;
  /** The worker's plugin.path: holds one folder per plugin. */
  pluginPath: string;
  /** The Debezium JDBC sink's folder inside pluginPath. */
  pluginDir: string;
}

export function defaultCacheDir(): string {
  return path.join(os.homedir(), '.cache', 'treasure-hunt', 'connect-peer');
}

/** Where the jars of the current POM live, whether fetched yet or not. */
function connectJarsIn(cacheDir: string): ConnectJars {
  const hash = crypto.createHash('sha256').update(fs.readFileSync(POM)).digest('hex').slice(0, 12);
  const root = path.join(cacheDir, `jars-${hash}`);
  const pluginPath = path.join(root, 'plugins');
  return { workerDir: path.join(root, 'worker'), pluginPath, pluginDir: path.join(pluginPath, PLUGIN_NAME) };
}

/**
 * The jars, fetched if missing. Maven fills a staging folder that is renamed into place only
 * when both lists are complete, so an interrupted fetch never looks finished.
 */
export async function ensureConnectJars(cacheDir = defaultCacheDir()): Promise<ConnectJars & { fetchedSeconds?: number }> {
  const jars = connectJarsIn(cacheDir);
  const root = path.dirname(jars.workerDir);
  if (fs.existsSync(root)) return jars;

  const mvn = onPath('mvn');
  if (!mvn) throw new MissingToolError('Maven (to fetch Kafka Connect and the Debezium JDBC sink from Maven Central)', 'apt-get install maven', 'fetch the jars elsewhere into ' + root);
  const started = performance.now();
  const staging = `${root}.partial-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    await copyDependencies(mvn, 'worker', path.join(staging, 'worker'));
    await copyDependencies(mvn, 'plugin', path.join(staging, 'plugins', PLUGIN_NAME));
    assertNoJackson(path.join(staging, 'plugins', PLUGIN_NAME));
    fs.renameSync(staging, root);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return { ...jars, fetchedSeconds: (performance.now() - started) / 1000 };
}

async function copyDependencies(mvn: string, profile: 'worker' | 'plugin', outputDirectory: string): Promise<void> {
  try {
    await execFileAsync(
      mvn,
      ['-q', '-B', '-s', SETTINGS, '-f', POM, '-P', profile, 'dependency:copy-dependencies', `-DoutputDirectory=${outputDirectory}`, '-DincludeScope=runtime'],
      { maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (err) {
    const out = err as { stdout?: string; stderr?: string; message: string };
    const detail = `${out.stdout ?? ''}${out.stderr ?? ''}`.trim().split('\n').filter((l) => l.includes('ERROR')).slice(0, 5).join('\n');
    throw new Error(`Maven could not fetch the Connect peer's ${profile} jars (${POM}):\n${detail || out.message}`, { cause: err });
  }
}

/** A second Jackson in the plugin folder kills the sink task at start; catch a POM edit that brings one back. */
function assertNoJackson(pluginDir: string): void {
  const jackson = fs.readdirSync(pluginDir).filter((f) => f.startsWith('jackson-'));
  if (jackson.length > 0) throw new Error(`the plugin folder must not hold Jackson (the worker's is used); exclude ${jackson.join(', ')} in ${POM}`);
}
