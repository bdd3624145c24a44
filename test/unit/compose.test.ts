/**
 * docker-compose.yml cannot run in CI (no Docker engine), so this checks that it parses and
 * that its services, ports and environment agree with the project's configuration
 * (src/config.ts): a renamed variable, a moved port or a missing health check fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configVariableNames, loadConfig, projectRoot, type Config } from '../../src/config';
import { searchAttributeFlags } from '../../src/temporal/search-attributes';

type PortEntry = string | number | { target: number | string; published?: number | string };

interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  restart?: string;
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: PortEntry[];
  expose?: (string | number)[];
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
  volumes?: (string | { type?: string; source?: string; target: string })[];
  secrets?: (string | { source: string; target?: string })[];
}

interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string; environment?: string }>;
}

/** Where every port is published unless the user says otherwise (an interpolated default). */
const PUBLISH_ADDRESS = '${HUNT_PUBLISH_ADDRESS:-127.0.0.1}';

const INFRA_SERVICES = ['postgres', 'kafka', 'temporal'] as const;
const APP_SERVICES = ['migrate', 'ingest', 'worker', 'schedules'] as const;
/** The `hunt` subcommand each app service runs. */
const SUBCOMMANDS: Record<(typeof APP_SERVICES)[number], string[]> = { migrate: ['migrate'], ingest: ['ingest'], worker: ['worker'], schedules: ['schedules', 'apply'] };

const compose = loadCompose();
const defaults = loadConfig({});

/** Parses the file as Compose does, resolving `<<: *anchor` merge keys. */
function loadCompose(): ComposeFile {
  const text = fs.readFileSync(path.join(projectRoot, 'docker-compose.yml'), 'utf8');
  return parse(text, { merge: true }) as ComposeFile;
}

function service(name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service "${name}"`);
  return found;
}

/** A service's environment as process.env would hold it (map or `KEY=value` list form). */
function environmentOf(svc: ComposeService): Record<string, string | undefined> {
  const env = svc.environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((line) => {
        const eq = line.indexOf('=');
        return eq < 0 ? [line, undefined] : [line.slice(0, eq), line.slice(eq + 1)];
      })
    : Object.entries(env).map(([key, value]) => [key, value === null ? undefined : String(value)]);
  return Object.fromEntries(entries);
}

/** A Compose secret's file on the host: `${VAR:-default}` read as its default. */
function secretFile(name: string): string {
  const file = compose.secrets?.[name]?.file;
  if (!file) throw new Error(`docker-compose.yml has no file secret "${name}"`);
  return path.resolve(projectRoot, file.replace(/^\$\{[A-Z_]+:-(.*)\}$/, '$1'));
}

function secretsOf(svc: ComposeService): string[] {
  return (svc.secrets ?? []).map((s) => (typeof s === 'string' ? s : s.source));
}

/**
 * The environment as the container sees it, with `/run/secrets/<name>` (where Compose
 * mounts a secret the service lists) read from the secret's file on this machine.
 */
function containerEnvironment(name: string): Record<string, string | undefined> {
  const svc = service(name);
  return Object.fromEntries(
    Object.entries(environmentOf(svc)).map(([key, value]) => {
      const mounted = /^\/run\/secrets\/([\w.-]+)$/.exec(value ?? '');
      if (!mounted) return [key, value];
      expect(secretsOf(svc), `${name}: ${key} names a secret the service mounts`).toContain(mounted[1]);
      return [key, secretFile(mounted[1] as string)];
    }),
  );
}

function appConfig(name: string): Config {
  return loadConfig(containerEnvironment(name));
}

/** Container port → host port, from short (`"127.0.0.1:8080:8080/tcp"`) or long syntax. */
function publishedPorts(svc: ComposeService): Map<number, number | undefined> {
  const ports = new Map<number, number | undefined>();
  for (const entry of svc.ports ?? []) {
    if (typeof entry === 'object') {
      ports.set(Number(entry.target), entry.published === undefined ? undefined : Number(entry.published));
      continue;
    }
    const parts = String(entry).replace(/\/(tcp|udp)$/, '').split(':');
    const container = Number(parts.at(-1));
    ports.set(container, parts.length > 1 ? Number(parts.at(-2)) : undefined);
  }
  return ports;
}

/** Ports the broker listens on, from KAFKA_LISTENERS (`NAME://host:port,...`). */
function kafkaListenerPorts(svc: ComposeService): number[] {
  return listenerAddresses(environmentOf(svc).KAFKA_LISTENERS).map((a) => a.port);
}

function listenerAddresses(value: string | undefined): { name: string; host: string; port: number }[] {
  return (value ?? '')
    .split(',')
    .filter(Boolean)
    .map((listener) => {
      const match = /^(\w+):\/\/([^:]*):(\d+)$/.exec(listener.trim());
      if (!match) throw new Error(`not a Kafka listener: ${listener}`);
      return { name: match[1] as string, host: match[2] as string, port: Number(match[3]) };
    });
}

/** Container ports other containers can reach: published, exposed, or a Kafka listener. */
function reachablePorts(svc: ComposeService): number[] {
  return [...publishedPorts(svc).keys(), ...(svc.expose ?? []).map(Number), ...kafkaListenerPorts(svc)];
}

function hostAndPort(address: string): { host: string; port: number } {
  const [host, port] = address.split(':');
  return { host: host as string, port: Number(port) };
}

function dependencies(svc: ComposeService): Record<string, string> {
  const deps = svc.depends_on ?? [];
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, dep]) => [name, dep.condition ?? 'service_started']));
}

function commandArgs(svc: ComposeService): string[] {
  const command = svc.command ?? [];
  return Array.isArray(command) ? command.map(String) : command.split(/\s+/).filter(Boolean);
}

function healthcheckCommand(svc: ComposeService): string {
  const test = svc.healthcheck?.test ?? [];
  return Array.isArray(test) ? test.join(' ') : test;
}

/** The values that follow each occurrence of a flag, e.g. every `--search-attribute X`. */
function flagValues(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag && args[i + 1] !== undefined ? [args[i + 1] as string] : []));
}

describe('docker-compose.yml', () => {
  it('defines the infrastructure and the app services, nothing else', () => {
    expect(Object.keys(compose.services).sort()).toEqual([...INFRA_SERVICES, ...APP_SERVICES].sort());
  });

  it('gives every infrastructure service a health check', () => {
    for (const name of INFRA_SERVICES) {
      const svc = service(name);
      expect(svc.healthcheck?.disable, name).not.toBe(true);
      expect(healthcheckCommand(svc), `${name} healthcheck`).not.toBe('');
    }
  });

  it('makes depends_on name existing services, waiting on health only where there is a check', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const [dependency, condition] of Object.entries(dependencies(svc))) {
        expect(Object.keys(compose.services), `${name} depends on ${dependency}`).toContain(dependency);
        if (condition === 'service_healthy') expect(healthcheckCommand(service(dependency)), `${dependency} healthcheck`).not.toBe('');
        if (condition === 'service_completed_successfully') expect(service(dependency).restart, `${dependency} is one-shot`).toBe('no');
      }
    }
  });

  it('starts the app only after the schema is migrated', () => {
    expect(dependencies(service('migrate'))).toMatchObject({ postgres: 'service_healthy' });
    for (const name of ['ingest', 'worker']) {
      expect(dependencies(service(name)), name).toMatchObject({ migrate: 'service_completed_successfully' });
    }
  });

  it('applies the Schedules once Temporal answers: hunt worker runs their jobs but never creates them', () => {
    expect(commandArgs(service('schedules')).slice(-3)).toEqual(['bin/hunt.js', 'schedules', 'apply']);
    expect(dependencies(service('schedules'))).toMatchObject({ temporal: 'service_healthy' });
    expect(service('schedules').restart).toBe('no');
  });

  it('declares every named volume a service mounts', () => {
    const declared = Object.keys(compose.volumes ?? {});
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const volume of svc.volumes ?? []) {
        const source = typeof volume === 'string' ? volume.split(':')[0] : volume.source;
        const isNamed = source !== undefined && !source.startsWith('.') && !source.startsWith('/');
        if (isNamed) expect(declared, `${name} mounts ${source}`).toContain(source);
      }
    }
  });

  describe.each(APP_SERVICES)('app service %s', (name) => {
    const svc = service(name);
    const env = environmentOf(svc);

    it('runs the hunt command from the Dockerfile at the repository root', () => {
      const context = typeof svc.build === 'string' ? svc.build : svc.build?.context;
      expect(path.resolve(projectRoot, context ?? '')).toBe(projectRoot);
      expect(fs.existsSync(path.join(projectRoot, 'Dockerfile'))).toBe(true);
      // node, then any V8/Node flags (e.g. the ingest's heap cap), then the hunt subcommand.
      const args = commandArgs(svc);
      expect(args[0]).toBe('node');
      const hunt = args.indexOf('bin/hunt.js');
      expect(args.slice(1, hunt).every((flag) => flag.startsWith('--'))).toBe(true);
      expect(args.slice(hunt + 1)).toEqual(SUBCOMMANDS[name]);
      expect(fs.existsSync(path.join(projectRoot, 'bin/hunt.js'))).toBe(true);
    });

    it('sets only variables that src/config.ts reads, each with a value', () => {
      for (const [key, value] of Object.entries(env)) {
        expect(configVariableNames, `${name}: ${key}`).toContain(key);
        expect(value, `${name}: ${key} has a value`).toBeDefined();
      }
    });

    it('gives an environment that loadConfig accepts, pointing at the compose services', () => {
      expect(() => loadConfig(containerEnvironment(name))).not.toThrow();
      const config = appConfig(name);
      expect(config.external.databaseUrl, 'DATABASE_URL').toBeDefined();
      expect(config.external.kafkaBrokers, 'KAFKA_BROKERS').toBeDefined();
      expect(config.external.temporalAddress, 'TEMPORAL_ADDRESS').toBeDefined();
    });

    it('uses the batch task queue and the default topics', () => {
      const config = appConfig(name);
      expect(config.temporal.taskQueue).toBe('hunt-batch');
      expect(config.kafka.topics).toEqual(defaults.kafka.topics);
    });

    it('shares one configuration with the other app services', () => {
      expect(env).toEqual(environmentOf(service('ingest')));
    });
  });

  describe('addresses in the app environment', () => {
    it('DATABASE_URL names the postgres service, its port, user and database; the password is the secret Postgres was given', () => {
      const config = appConfig('ingest');
      const url = new URL(config.databaseUrl);
      const postgres = service(url.hostname);
      expect(url.hostname).toBe('postgres');
      expect(reachablePorts(postgres)).toContain(Number(url.port || 5432));
      const pgEnv = containerEnvironment('postgres');
      expect(decodeURIComponent(url.username)).toBe(pgEnv.POSTGRES_USER);
      expect(url.pathname.slice(1)).toBe(pgEnv.POSTGRES_DB ?? pgEnv.POSTGRES_USER);
      expect(pgEnv.POSTGRES_HOST_AUTH_METHOD).toBeUndefined();
      // The same file, read the way the postgres image reads POSTGRES_PASSWORD_FILE.
      expect(config.postgres.password).toBe(fs.readFileSync(pgEnv.POSTGRES_PASSWORD_FILE as string, 'utf8').replace(/\n$/, ''));
      expect(config.postgres.password?.length).toBeGreaterThanOrEqual(12);
    });

    it('KAFKA_BROKERS name a listener the kafka service advertises to other containers', () => {
      const config = appConfig('ingest');
      for (const broker of config.kafka.brokers) {
        const { host, port } = hostAndPort(broker);
        const kafka = service(host);
        expect(host).toBe('kafka');
        expect(kafkaListenerPorts(kafka)).toContain(port);
        const advertised = listenerAddresses(environmentOf(kafka).KAFKA_ADVERTISED_LISTENERS);
        expect(advertised.map((a) => `${a.host}:${a.port}`)).toContain(broker);
      }
    });

    it('TEMPORAL_ADDRESS names the temporal service on a port it exposes on all interfaces', () => {
      const config = appConfig('ingest');
      const { host, port } = hostAndPort(config.temporal.address);
      const temporal = service(host);
      expect(host).toBe('temporal');
      expect(reachablePorts(temporal)).toContain(port);
      const args = commandArgs(temporal);
      expect(flagValues(args, '--ip')).toEqual(['0.0.0.0']);
      expect(flagValues(args, '--port')).toEqual(port === 7233 ? [] : [String(port)]);
    });

    it('the published ingest port is API_PORT, the API listens on every interface of its container, and its health check asks the unpublished API_OPS_PORT', () => {
      const config = appConfig('ingest');
      const ingest = service('ingest');
      expect(publishedPorts(ingest).get(config.api.port)).toBe(config.api.port);
      expect(config.api.bindAddress).toBe('0.0.0.0');
      expect(config.api.opsPort).toBeDefined();
      expect(publishedPorts(ingest).has(config.api.opsPort!)).toBe(false);
      expect(healthcheckCommand(ingest)).toContain(`:${config.api.opsPort}/healthz`);
    });
  });

  describe('security', () => {
    it('publishes every port on 127.0.0.1 unless HUNT_PUBLISH_ADDRESS says otherwise', () => {
      for (const [name, svc] of Object.entries(compose.services)) {
        for (const entry of svc.ports ?? []) {
          expect(typeof entry, `${name}: long-syntax ports need host_ip`).toBe('string');
          expect(String(entry), `${name} publishes ${String(entry)}`).toMatch(new RegExp(`^${PUBLISH_ADDRESS.replace(/[$|{}.*+?^()[\]\\]/g, '\\$&')}:\\d+:\\d+$`));
        }
      }
    });

    it('passes no password or key in any environment: secrets are files', () => {
      for (const [name, svc] of Object.entries(compose.services)) {
        const env = environmentOf(svc);
        for (const [key, value] of Object.entries(env)) {
          expect(key, `${name}: ${key}`).not.toMatch(/^(POSTGRES_PASSWORD|DATABASE_PASSWORD|KAFKA_SASL_PASSWORD|TEMPORAL_API_KEY)$/);
          if (/^postgres(ql)?:\/\//.test(value ?? '')) expect(new URL(value as string).password, `${name}: ${key}`).toBe('');
        }
      }
      for (const name of Object.keys(compose.secrets ?? {})) expect(fs.existsSync(secretFile(name)), `secret ${name}`).toBe(true);
    });
  });

  describe('infrastructure settings the app relies on', () => {
    it('Temporal has the namespace and the search attributes the batch plane sets', () => {
      const args = commandArgs(service('temporal'));
      const namespace = appConfig('worker').temporal.namespace;
      if (namespace !== 'default') expect(flagValues(args, '--namespace')).toContain(namespace);
      expect(flagValues(args, '--search-attribute').sort()).toEqual([...searchAttributeFlags].sort());
      expect(reachablePorts(service('temporal')), 'Web UI').toContain(8233);
    });

    it('Kafka is one KRaft node whose internal topics fit on one broker', () => {
      const env = environmentOf(service('kafka'));
      expect(env.KAFKA_PROCESS_ROLES?.split(',').sort()).toEqual(['broker', 'controller']);
      expect(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe('1');
      expect(env.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR).toBe('1');
      expect(env.KAFKA_TRANSACTION_STATE_LOG_MIN_ISR).toBe('1');
      expect(env.KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS).toBe('0');
      // StorageTool rejects a cluster id that is not 16 bytes in URL-safe base64.
      expect(Buffer.from(env.CLUSTER_ID ?? '', 'base64url')).toHaveLength(16);
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = fs.readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
  // `COPY <source>... <destination>` from the build context (no --from stage copies here).
  const copied = [...dockerfile.matchAll(/^COPY\s+(.+)$/gm)].flatMap((m) => (m[1] as string).trim().split(/\s+/).slice(0, -1));

  it('copies only paths that exist', () => {
    expect(copied.length).toBeGreaterThan(0);
    expect(copied.filter((source) => !fs.existsSync(path.join(projectRoot, source)))).toEqual([]);
  });

  it('copies every file the copied sources import by a relative path', () => {
    const inImage = (file: string) => copied.some((source) => file === path.join(projectRoot, source) || file.startsWith(path.join(projectRoot, source) + path.sep));
    const sources = copied.filter((source) => fs.existsSync(path.join(projectRoot, source)) && fs.statSync(path.join(projectRoot, source)).isDirectory());
    const files = sources.flatMap((source) => fs.readdirSync(path.join(projectRoot, source), { recursive: true, encoding: 'utf8' }).map((f) => path.join(projectRoot, source, f)));
    const missing = new Set<string>();
    for (const file of files.filter((f) => /\.(ts|js)$/.test(f))) {
      for (const [, specifier] of fs.readFileSync(file, 'utf8').matchAll(/(?:from|import\(|require\()\s*'(\.\.?\/[^']+)'/g)) {
        const target = path.resolve(path.dirname(file), specifier as string);
        if (!inImage(target)) missing.add(`${path.relative(projectRoot, file)} imports ${specifier}`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it('listens on every interface of its container: a published port reaches nothing bound to 127.0.0.1', () => {
    // The code's defaults keep a laptop's API and metrics off the network; in an image run with
    // its own manifests (docker run -p, Kubernetes) they made the API and the probes unreachable.
    const env = Object.fromEntries([...dockerfile.matchAll(/^ENV\s+(\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    expect(env).toMatchObject({ API_BIND_ADDRESS: '0.0.0.0', WORKER_METRICS_BIND_ADDRESS: '0.0.0.0' });
    for (const key of Object.keys(env).filter((k) => k !== 'NODE_ENV')) expect(configVariableNames).toContain(key);
  });
});
