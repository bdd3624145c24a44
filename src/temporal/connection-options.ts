/**
 * How to reach Temporal: address, TLS (with a client certificate: mTLS) and API key from
 * configuration, in the shape both the client's Connection and the worker's
 * NativeConnection take. Every connection of the project is made with these.
 */
import type { TLSConfig } from '@temporalio/client';
import type { Config } from '../config';

export interface TemporalConnectionOptions {
  address: string;
  /** `false`: plain text, said outright. Left out, the SDK turns TLS on whenever an API key is set. */
  tls: TLSConfig | false;
  apiKey?: string;
}

export function temporalConnectionOptions(config: Pick<Config, 'temporal'>): TemporalConnectionOptions {
  const { address, security } = config.temporal;
  // TEMPORAL_TLS=false with an API key (a trusted network) must mean plain text: left
  // undefined, the SDK took the key as a reason for TLS, and every connection to a plain-text
  // frontend failed while the settings said otherwise.
  const options: TemporalConnectionOptions = { address, tls: false };
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
