/**
 * The soak's own embedded stack: the same services as `hunt stack up`, under their own state
 * folder and on their own ports, so the faults it injects (a broker restart, Postgres
 * stopped for a minute, Temporal restarted) never reach the developer's stack or a test run.
 */
import path from 'node:path';
import { EmbeddedKafka } from '../../infra/kafka';
import { EmbeddedPostgres } from '../../infra/postgres';
import { stackDown, stackUp } from '../../infra/stack';
import { EmbeddedTemporal } from '../../infra/temporal';
import { loadConfig, projectRoot, type Config } from '../../src/config';

/** Ports of the soak stack: the defaults plus 10000, clear of the dev stack and of tests. */
export function soakEnv(): Record<string, string> {
  return {
    HUNT_STATE_DIR: path.join(projectRoot, '.hunt', 'soak-stack'),
    HUNT_PG_PORT: '25432',
    HUNT_KAFKA_PORT: '29092',
    HUNT_KAFKA_CONTROLLER_PORT: '29093',
    HUNT_TEMPORAL_PORT: '17233',
    HUNT_TEMPORAL_UI_PORT: '18233',
    DATABASE_URL: '',
    KAFKA_BROKERS: '',
    TEMPORAL_ADDRESS: '',
  };
}

export function soakConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, ...soakEnv(), ...extra });
}

export class SoakStack {
  readonly config = soakConfig();
  readonly postgres = new EmbeddedPostgres(this.config);
  readonly kafka = new EmbeddedKafka(this.config);
  readonly temporal = new EmbeddedTemporal(this.config);

  up = () => stackUp(this.config);
  down = () => stackDown(this.config);

  async restartKafka(): Promise<void> {
    await this.kafka.down();
    await this.kafka.up();
  }

  async restartTemporal(): Promise<void> {
    await this.temporal.down();
    await this.temporal.up();
  }

  /** Stops Postgres, waits, starts it again. */
  async stopPostgresFor(ms: number): Promise<void> {
    await this.postgres.down();
    await new Promise((resolve) => setTimeout(resolve, ms));
    await this.postgres.up();
  }
}
