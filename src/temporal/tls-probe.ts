/**
 * Why a connection to Temporal failed, when the SDK cannot say: the gRPC client reports
 * only "Failed to connect before the deadline" when a TLS handshake fails, and the worker's
 * core often just "connection closed". One short handshake of our own, with the same
 * settings, names the cause: an untrusted certificate, a client certificate the server
 * wants or refuses, TLS on one side only. Used only after a connection has failed.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Config } from '../config';

const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
/** An empty HTTP/2 SETTINGS frame: with the preface, what a gRPC client sends first. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** The handshake's error (or a sentence for what was seen), or undefined when TLS works. */
export async function probeTemporalTls(config: Pick<Config, 'temporal'>, timeoutMs = 3000): Promise<Error | undefined> {
  const { address, security } = config.temporal;
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  return security.tls ? tlsProbe(host, port, security.tls, timeoutMs) : plainProbe(host, port, timeoutMs);
}

function tlsProbe(host: string, port: number, settings: NonNullable<Config['temporal']['security']['tls']>, timeoutMs: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const servername = settings.serverName ?? (net.isIP(host) ? undefined : host);
    const socket = tls.connect({
      host,
      port,
      servername,
      ca: settings.ca,
      cert: settings.cert,
      key: settings.key,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: true,
    });
    const done = (result: Error | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('error', (err) => done(err));
    // TLS 1.3 servers refuse a client certificate after the handshake: speak first, then
    // an answer means accepted and an alert or a close means refused.
    socket.once('secureConnect', () => socket.write(Buffer.concat([Buffer.from(HTTP2_PREFACE), EMPTY_SETTINGS])));
    socket.once('data', () => done(undefined));
    socket.once('end', () => done(new Error('the TLS endpoint closed the connection after the handshake (certificate required?)')));
  });
}

/** A plain-text client at a TLS endpoint: the server answers the preface with a TLS alert. */
function plainProbe(host: string, port: number, timeoutMs: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result: Error | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write(Buffer.concat([Buffer.from(HTTP2_PREFACE), EMPTY_SETTINGS])));
    socket.once('data', (data: Buffer) => done(data[0] === 0x15 || data[0] === 0x16 ? new Error('the endpoint answered with TLS (wrong version number)') : undefined));
    socket.once('end', () => done(new Error('the endpoint closed a plain-text connection at once (wrong version number: it may want TLS)')));
  });
}
