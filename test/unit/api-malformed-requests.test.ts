/**
 * Requests Node's HTTP parser refuses get the API's JSON refusal, on a real HTTP server, where
 * Node wrote a bare status line with no body (CONTRACT.md §2: bad requests get a message).
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerMalformedRequests } from '../../src/api/http-limits';

let server: http.Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** Everything the server sends back for `bytes`, until it closes the connection. */
async function exchange(bytes: string): Promise<string> {
  server = http.createServer((_req, res) => res.end('{}'));
  answerMalformedRequests(server);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString()));
  socket.write(bytes);
  await new Promise((resolve) => socket.once('close', resolve));
  return received;
}

describe('a request the HTTP parser refuses', () => {
  it('gets a 400 with a JSON error, and the connection closed', async () => {
    const answer = await exchange('NOT HTTP AT ALL\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/content-type: application\/json/);
    expect(JSON.parse(answer.split('\r\n\r\n')[1] ?? '')).toEqual({ error: 'the request is not valid HTTP/1.1' });
  });

  it('gets a 431 with a JSON error when its headers are too large', async () => {
    const answer = await exchange(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    expect(JSON.parse(answer.split('\r\n\r\n')[1] ?? '')).toEqual({ error: 'the request headers are larger than the server takes' });
  });

  it('leaves the answer of a pipelined request before it whole', async () => {
    const answer = await exchange('GET / HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer.split('HTTP/1.1 ').length - 1).toBeLessThanOrEqual(2);
    expect(answer).toMatch(/\r\n\r\n\{\}/); // the first answer's body, not cut by the refusal
  });
});
