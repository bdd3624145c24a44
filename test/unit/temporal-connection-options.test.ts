import { normalizeTlsConfig } from '@temporalio/common/lib/internal-non-workflow';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { temporalConnectionOptions } from '../../src/temporal/connection-options';

/** What the SDK connects with, as it reads the options (client and worker alike). */
function connectsWith(env: Record<string, string>) {
  const options = temporalConnectionOptions(loadConfig({ TEMPORAL_ADDRESS: 'temporal.internal:7233', ...env }));
  return { tls: normalizeTlsConfig(options.tls, options.apiKey), apiKey: options.apiKey };
}

describe("Temporal's connection options", () => {
  it('send an API key over plain text when TEMPORAL_TLS is false (a trusted network), as the settings say', () => {
    expect(connectsWith({ TEMPORAL_API_KEY: 'key-1234', TEMPORAL_TLS: 'false' })).toEqual({ tls: undefined, apiKey: 'key-1234' });
  });

  it('use TLS for an API key otherwise', () => {
    expect(connectsWith({ TEMPORAL_API_KEY: 'key-1234' })).toEqual({ tls: {}, apiKey: 'key-1234' });
  });

  it('connect in plain text with no TLS setting and no key', () => {
    expect(connectsWith({})).toEqual({ tls: undefined, apiKey: undefined });
  });
});
