/**
 * A throwaway certificate authority for TLS tests, made with Debian's `openssl`: a CA, a
 * server certificate for localhost and 127.0.0.1, and a client certificate, as PEM files in
 * a folder of the test's own. A second, unrelated CA stands in for "a CA nobody trusts".
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileAsync } from '../../infra/process';

export interface CertificatePair {
  cert: string;
  key: string;
}

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM file path). */
  caFile: string;
  /** For localhost and 127.0.0.1. */
  server: CertificatePair;
  /** Signed by this CA; its common name is the given client name. */
  client: CertificatePair;
  /** A pair signed by another CA: what a server must refuse. */
  strangerClient: CertificatePair;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await execFileAsync('openssl', args, { cwd: dir }).catch((err: Error & { stderr?: string }) => {
    throw new Error(`openssl ${args[0]} failed (is Debian's openssl installed? infra/install-system-packages.sh): ${err.stderr ?? err.message}`);
  });
}

async function selfSignedCa(dir: string, name: string): Promise<CertificatePair> {
  const pair = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  await openssl(dir, [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', pair.key, '-out', pair.cert,
  ]);
  return pair;
}

async function signedPair(dir: string, ca: CertificatePair, name: string, commonName: string, extensions: string[]): Promise<CertificatePair> {
  const pair = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, `${['basicConstraints=CA:FALSE', ...extensions].join('\n')}\n`);
  await openssl(dir, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${commonName}`, '-keyout', pair.key, '-out', csr]);
  // A serial of its own: pairs are signed at once, and -CAcreateserial had them read and write
  // one serial file together (openssl then failed on a half-written one).
  const serial = `0x${randomBytes(8).toString('hex')}`;
  await openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-days', '2', '-extfile', ext, '-out', pair.cert]);
  return pair;
}

export async function createTestCa(dir: string, clientName = 'hunt'): Promise<TestCa> {
  fs.mkdirSync(dir, { recursive: true });
  const ca = await selfSignedCa(dir, 'ca');
  const stranger = await selfSignedCa(dir, 'stranger-ca');
  const [server, client, strangerClient] = await Promise.all([
    signedPair(dir, ca, 'server', 'localhost', ['subjectAltName=DNS:localhost,IP:127.0.0.1', 'extendedKeyUsage=serverAuth,clientAuth']),
    signedPair(dir, ca, 'client', clientName, ['extendedKeyUsage=clientAuth']),
    signedPair(dir, stranger, 'stranger-client', clientName, ['extendedKeyUsage=clientAuth']),
  ]);
  // Servers are often not root here (Postgres runs as `postgres`): the files must be readable.
  for (const file of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, file), 0o644);
  return { dir, caFile: ca.cert, server, client, strangerClient };
}
