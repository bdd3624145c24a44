/**
 * The embedded services' environment: a long-lived process's environment can be read in
 * /proc/<pid>/environ, so the project's own variables (which may hold secrets of services
 * that are not embedded) are not passed on; everything else (PATH, JAVA_HOME, locale) is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { serviceEnvironment } from '../../infra/process';

const SET = { DATABASE_URL: 'postgres://hunt:db-secret@db.example.net/hunt', KAFKA_SASL_PASSWORD: 'kafka-secret', TEMPORAL_API_KEY: 'temporal-secret', JAVA_HOME: '/opt/java' };
const saved = Object.fromEntries(Object.keys(SET).map((name) => [name, process.env[name]]));

afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('serviceEnvironment', () => {
  it("passes this process's environment on without the project's configuration variables", () => {
    Object.assign(process.env, SET);
    const env = serviceEnvironment({ TEMPORAL_VERSION_CHECK_DISABLED: '1' });
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.KAFKA_SASL_PASSWORD).toBeUndefined();
    expect(env.TEMPORAL_API_KEY).toBeUndefined();
    expect(JSON.stringify(env)).not.toMatch(/secret/);
    expect(env).toMatchObject({ JAVA_HOME: '/opt/java', PATH: process.env.PATH, TEMPORAL_VERSION_CHECK_DISABLED: '1' });
  });
});
