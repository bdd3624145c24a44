/**
 * A TLS-terminating proxy in front of the Temporal dev server, which has no TLS flags of its
 * own: Debian's haproxy, with two doors to the same server.
 *   mTLS:    TLS that requires a client certificate signed by the test CA, then raw TCP.
 *   API key: TLS, then HTTP/2 (gRPC) passed through only with `authorization: Bearer <key>`;
 *            anything else gets 401, which gRPC clients read as UNAUTHENTICATED.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execFileAsync, logTail, onPath, portOpen, waitUntil } from '../../infra/process';
import type { TestCa } from './test-ca';

export interface TlsProxy {
  mtlsAddress: string;
  apiKeyAddress: string;
  stop(): Promise<void>;
}

export async function startTemporalTlsProxy(options: {
  dir: string;
  ca: TestCa;
  target: string;
  ports: { mtls: number; apiKey: number };
  apiKey: string;
}): Promise<TlsProxy> {
  const { dir, ca, target, ports, apiKey } = options;
  fs.mkdirSync(dir, { recursive: true });
  const bundle = path.join(dir, 'server-bundle.pem');
  fs.writeFileSync(bundle, fs.readFileSync(ca.server.cert, 'utf8') + fs.readFileSync(ca.server.key, 'utf8'), { mode: 0o600 });
  const configFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    configFile,
    `global
  maxconn 512

defaults
  timeout connect 5s
  # Workers long-poll for tasks for up to about a minute.
  timeout client 5m
  timeout server 5m

frontend temporal_mtls
  mode tcp
  bind 127.0.0.1:${ports.mtls} ssl crt ${bundle} ca-file ${ca.caFile} verify required alpn h2
  default_backend temporal_tcp

backend temporal_tcp
  mode tcp
  server dev ${target}

frontend temporal_api_key
  mode http
  bind 127.0.0.1:${ports.apiKey} ssl crt ${bundle} alpn h2
  http-request deny deny_status 401 unless { req.hdr(authorization) -m str "Bearer ${apiKey}" }
  default_backend temporal_h2

backend temporal_h2
  mode http
  server dev ${target} proto h2
`,
    { mode: 0o600 },
  );
  // Debian puts it in /usr/sbin, which is not on every user's PATH.
  const haproxy = onPath('haproxy') ?? '/usr/sbin/haproxy';
  await execFileAsync(haproxy, ['-c', '-q', '-f', configFile]).catch((err: Error & { stderr?: string }) => {
    throw new Error(`haproxy is missing or refuses the config (infra/install-system-packages.sh installs it): ${err.stderr ?? err.message}`, { cause: err });
  });
  const logFile = path.join(dir, 'haproxy.log');
  const out = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn(haproxy, ['-db', '-f', configFile], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  try {
    await waitUntil('haproxy', async () => (await portOpen(ports.mtls)) && portOpen(ports.apiKey), { timeoutMs: 15_000, pid: child.pid, logFile });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}${logTail(logFile)}`, { cause: err });
  }
  return { mtlsAddress: `127.0.0.1:${ports.mtls}`, apiKeyAddress: `127.0.0.1:${ports.apiKey}`, stop };
}
