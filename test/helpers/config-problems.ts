import { expect } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';

/** The problems loadConfig reports for `env`; a test failure if it loads. */
export function problemsOf(env: Record<string, string>): ConfigError['problems'] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}
