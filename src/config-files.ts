/**
 * Configuration values that live in files: secrets given as `NAME_FILE` (the Docker and
 * Kubernetes secrets convention) and TLS certificates and keys. Read once, at start-up, by
 * src/config.ts; a file that cannot be used stops start-up naming the variable and the
 * path, never the file's contents.
 */
import fs from 'node:fs';
import { redactUrl, registerSecret } from './redact';

/** Variables that hold a secret; each may also be given as `<NAME>_FILE`. */
export const SECRET_VARIABLES = ['DATABASE_URL', 'DATABASE_PASSWORD', 'KAFKA_SASL_PASSWORD', 'TEMPORAL_API_KEY'] as const;
export type SecretVariable = (typeof SECRET_VARIABLES)[number];

const secretNames: ReadonlySet<string> = new Set(SECRET_VARIABLES);

/** A bad value as an error may show it: a URL without its password, a secret not at all. */
export function shownValue(name: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (name === 'DATABASE_URL') return redactUrl(raw);
  return secretNames.has(name) ? '(hidden)' : raw;
}

export interface ConfigProblem {
  variable: string;
  expected: string;
  /** What to print for the value: already made safe to show (see describeValue). */
  got: string | undefined;
}

/** Larger than any certificate bundle or secret; a bigger file is a wrong path. */
const MAX_FILE_BYTES = 1024 * 1024;

function readSmallFile(file: string): { text: string } | { error: string } {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return { error: 'not a regular file' };
    if (stat.size > MAX_FILE_BYTES) return { error: `larger than ${MAX_FILE_BYTES} bytes` };
    return { text: fs.readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable') };
  }
}

/**
 * The environment with each secret `NAME_FILE` read into `NAME` (one trailing newline
 * dropped, as editors and `echo` add one). Setting both `NAME` and `NAME_FILE` is a problem:
 * which one wins would be a guess. Every secret found is registered for scrubbing.
 */
export function resolveSecretFiles(env: NodeJS.ProcessEnv, problems: ConfigProblem[]): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const name of SECRET_VARIABLES) {
    const fileVariable = `${name}_FILE`;
    const file = env[fileVariable] === '' ? undefined : env[fileVariable];
    const direct = env[name] === '' ? undefined : env[name];
    if (file !== undefined) {
      if (direct !== undefined) {
        problems.push({ variable: fileVariable, expected: `either ${name} or ${fileVariable}, not both`, got: file });
        continue;
      }
      const read = readSmallFile(file);
      if ('error' in read) {
        problems.push({ variable: fileVariable, expected: `a readable file holding ${name}`, got: `${file} (${read.error})` });
        continue;
      }
      const value = read.text.replace(/\r?\n$/, '');
      if (value.trim() === '') {
        problems.push({ variable: fileVariable, expected: `a file holding ${name}`, got: `${file} (empty)` });
        continue;
      }
      out[name] = value;
    }
    registerSecret(secretOf(name, out[name] === '' ? undefined : out[name]));
  }
  return out;
}

/**
 * What of a secret variable's value is secret. A DATABASE_URL without a password (the
 * password in DATABASE_PASSWORD_FILE, the documented way) is an address: scrubbed whole, it
 * showed as *** wherever the Postgres address was printed (`hunt stack status`, a log line).
 */
function secretOf(name: SecretVariable, value: string | undefined): string | undefined {
  // A URL as the scrubber knows one (scheme://): `postgres:/hunt:pw@db` parses too, with no
  // password, and is no URL to the scrubber, which must then hide it whole.
  if (name !== 'DATABASE_URL' || value === undefined || !/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || !URL.canParse(value)) return value;
  const url = new URL(value);
  return url.password === '' && !/password/i.test(url.search) ? undefined : value;
}

/**
 * A PEM file's text (certificate, bundle or private key) for a `*_FILE` variable, or
 * undefined after recording a problem. Only the path is ever shown.
 */
export function readPemFile(variable: string, file: string, what: string, problems: ConfigProblem[]): string | undefined {
  const read = readSmallFile(file);
  if ('error' in read) {
    problems.push({ variable, expected: `a readable PEM file holding ${what}`, got: `${file} (${read.error})` });
    return undefined;
  }
  if (!read.text.includes('-----BEGIN ')) {
    problems.push({ variable, expected: `a PEM file holding ${what} (text starting with -----BEGIN)`, got: `${file} (not PEM)` });
    return undefined;
  }
  return read.text;
}
