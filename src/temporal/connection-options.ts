/**
 * How to reach Temporal: address, TLS (with a client certificate: mTLS) and API key from
 * configuration, in the shape both the client's Connection and the worker's
 * NativeConnection take. Every connection of the project is made with these.
 */
import type { TLSConfig } from '@temporalio/client';
import type { Config } from '../config';

export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

export function temporalConnectionOptions(config: Pick<Config, 'temporal'>): TemporalConnectionOptions {
  const { address, security } = config.temporal;
  const options: TemporalConnectionOptions = { address };
  if (security.tls) {
    const { ca, cert, key, serverName } = security.tls;
    const tls: TLSConfig = {};
    if (ca) tls.serverRootCACertificate = Buffer.from(ca);
    if (cert && key) tls.clientCertPair = { crt: Buffer.from(cert), key: Buffer.from(key) };
    if (serverName) tls.serverNameOverride = serverName;
    options.tls = tls;
  }
  if (security.apiKey) options.apiKey = security.apiKey;
  return options;
}
