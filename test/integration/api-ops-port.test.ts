/**
 * /healthz, /readyz and /metrics on API_OPS_PORT, while the public's connections have used
 * up API_MAX_CONNECTIONS on API_PORT: the probes and Prometheus are still answered there, and
 * the refused public connections are counted. Before, an orchestrator's liveness probe was
 * refused with everyone else and restarted the healthy process that runs the hot path.
 */
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database-fixture';
import { createTestTopics, startIngestProcess, type IngestProcess } from '../helpers/ingest';
import { freePort } from '../helpers/tcp-forward';
import { waitFor } from '../helpers/wait';

const MAX_CONNECTIONS = 8;
const db = useTestDatabase();
const sockets: net.Socket[] = [];
let ingest: IngestProcess | undefined;
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await ingest?.kill('SIGKILL');
});

/** Whether a GET of /healthz on a new connection to `port` is answered at all (fetch would reuse a pooled one). */
function answeredOnNewConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    socket.setTimeout(5000, () => socket.destroy());
    let reply = '';
    socket.on('data', (chunk) => (reply += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(reply.startsWith('HTTP/1.1 200')));
  });
}

describe('API_OPS_PORT', () => {
  it('answers the probes and the scrape while the public has used up API_MAX_CONNECTIONS, and counts the refused', async () => {
    const topics = await createTestTopics(2);
    const opsPort = await freePort();
    ingest = startIngestProcess(db.url, topics, { API_MAX_CONNECTIONS: String(MAX_CONNECTIONS), API_OPS_PORT: String(opsPort) });
    await ingest.ready();
    const ops = `http://127.0.0.1:${opsPort}`;
    const apiPort = Number(new URL(ingest.apiUrl).port);

    // Idle connections that send nothing: the header timeout (10 s) has not passed yet.
    for (let i = 0; i < MAX_CONNECTIONS; i++) {
      const socket = net.connect(apiPort, '127.0.0.1');
      socket.on('error', () => undefined);
      sockets.push(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
    }
    await waitFor('the read API to refuse a connection past its cap', async () => !(await answeredOnNewConnection(apiPort)), { timeoutMs: 5000, intervalMs: 100 });

    expect((await fetch(`${ops}/healthz`)).status).toBe(200);
    expect((await fetch(`${ops}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    expect(Number(/^hunt_api_connections_refused_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^hunt_ingest_stalled 0$/m);
    // Nothing else is served there.
    expect((await fetch(`${ops}/hunts/h/leaderboard`)).status).toBe(404);
  });
});
