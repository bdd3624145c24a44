/**
 * The embedded stack: Postgres, Kafka and Temporal as plain processes on 127.0.0.1, or the
 * services that configuration points at. `up` is idempotent: running services are reused.
 */
import type { Config } from '../src/config';
import { EmbeddedKafka, ExternalKafka } from './kafka';
import { EmbeddedPostgres, ExternalPostgres } from './postgres';
import { runningPid, servicePaths } from './process';
import { withStackLock } from './stack-lock';
import type { ServiceStatus, StackService } from './service';
import { EmbeddedTemporal, ExternalTemporal } from './temporal';

export function stackServices(config: Config): StackService[] {
  const { external } = config;
  return [
    external.databaseUrl ? new ExternalPostgres(config) : new EmbeddedPostgres(config),
    external.kafkaBrokers ? new ExternalKafka(external.kafkaBrokers, config.kafka.security) : new EmbeddedKafka(config),
    external.temporalAddress ? new ExternalTemporal(config) : new EmbeddedTemporal(config),
  ];
}

export class StackError extends Error {
  constructor(readonly statuses: ServiceStatus[]) {
    super(
      'Not every service came up:\n' +
        statuses
          .filter((s) => s.state !== 'up')
          .map((s) => `  ${s.name} (${s.mode}, ${s.address}): ${s.error ?? 'down'}`)
          .join('\n'),
    );
    this.name = 'StackError';
  }
}

/** Brings every service up in parallel; throws a StackError naming each one that failed. */
export async function stackUp(config: Config): Promise<ServiceStatus[]> {
  const services = stackServices(config);
  const statuses = await exclusive(
    config,
    () =>
      Promise.all(
        services.map((service) =>
          service.up().catch(
            (err: Error): ServiceStatus => ({ name: service.name, state: 'down', mode: 'embedded', address: '-', error: err.message }),
          ),
        ),
      ),
  );
  if (statuses.some((s) => s.state !== 'up')) throw new StackError(statuses);
  return statuses;
}

export function stackDown(config: Config): Promise<ServiceStatus[]> {
  return exclusive(config, async () => {
    // Reverse order: Temporal and Kafka first, Postgres last.
    const statuses: ServiceStatus[] = [];
    for (const service of stackServices(config).reverse()) statuses.unshift(await service.down());
    return statuses;
  });
}

/** One `up` or `down` at a time for the embedded services; services all external need no lock (nor a state folder). */
function exclusive<T>(config: Config, fn: () => Promise<T>): Promise<T> {
  const { databaseUrl, kafkaBrokers, temporalAddress } = config.external;
  return databaseUrl && kafkaBrokers && temporalAddress ? fn() : withStackLock(config.stack.stateDir, fn, waitingFor);
}

const waitingFor = (holder: number) => console.error(`another process (pid ${holder}) is bringing this stack up or down; waiting for it to finish`);

export function stackStatus(config: Config): Promise<ServiceStatus[]> {
  return Promise.all(stackServices(config).map((service) => service.status()));
}

export function formatStatuses(statuses: ServiceStatus[]): string {
  return statuses
    .map((s) => {
      const lines = [`${s.name.padEnd(9)} ${s.state.padEnd(5)} ${s.address}  ${s.version ?? ''}  [${s.mode}${s.pid ? `, pid ${s.pid}` : ''}]`];
      for (const [label, value] of Object.entries(s.details ?? {})) lines.push(`${''.padEnd(16)}${label}: ${value}`);
      if (s.error) lines.push(`${''.padEnd(16)}error: ${s.error}`);
      return lines.join('\n');
    })
    .join('\n');
}

/**
 * Watches the embedded services that `statuses` says run here: rejects, naming the service and
 * its log, once one's process is gone (it crashed, was killed, or `hunt stack down` ran).
 * A command built on them (`hunt start`) would otherwise run on half broken: Temporal's
 * Schedules stop firing while /readyz stays green, and a lost Kafka shows only as a stall.
 */
export function watchEmbedded(config: Config, statuses: ServiceStatus[], everyMs = 5000): { gone: Promise<never>; stop(): void } {
  const watched = statuses.filter((s) => s.mode === 'embedded' && s.pid !== undefined).map((s) => ({ name: s.name, pid: s.pid as number, ...servicePaths(config.stack.stateDir, s.name) }));
  let timer: NodeJS.Timeout | undefined;
  const gone = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const dead = watched.find((w) => runningPid(w.pidFile) !== w.pid);
      if (!dead) return;
      clearInterval(timer);
      reject(new Error(`the embedded ${dead.name} (pid ${dead.pid}) is no longer running; its log: ${dead.logFile} (hunt stack up starts it again)`));
    }, everyMs);
    timer.unref();
  });
  gone.catch(() => undefined);
  return { gone, stop: () => clearInterval(timer) };
}
