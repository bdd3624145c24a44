/**
 * Keeping secrets out of every output: log lines, error messages and `hunt` output.
 *
 * Two layers. Known places hide what they print (a URL's password, a secret variable's
 * value). Then, as the last line before any text leaves the process, `scrubSecrets`
 * replaces every secret the configuration holds and any password in a URL, so a library
 * that echoes a connection string or a credential into an error cannot leak it either.
 */
import { inspect } from 'node:util';

const HIDDEN = '***';
const NOT_SHOWN = '(not a URL; not shown, since it may hold a password)';

/** The secret values configuration has loaded (passwords, API keys, URLs with a password). */
const knownSecrets = new Set<string>();

/**
 * Remembers a secret so `scrubSecrets` hides it wherever it appears. Very short values are
 * skipped: hiding every "a" or "12" in every line would make logs unreadable, and a
 * credential that short is no secret anyway.
 */
export function registerSecret(value: string | undefined): void {
  if (value === undefined || value.length < 4) return;
  knownSecrets.add(value);
  // The password inside a URL, on its own: a driver may quote it without the rest.
  const password = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) && URL.canParse(value) ? new URL(value).password : '';
  if (password) {
    registerSecret(password);
    registerSecret(decodeOrKeep(password));
  }
  // The same secret as it appears inside a URL or a form body, and escaped inside a JSON log
  // line or util.format's picture of an object (a secret holding " ' or \ differs there).
  for (const form of [encodeURIComponent(value), JSON.stringify(value).slice(1, -1), inspect(value).slice(1, -1)]) {
    if (form !== value) knownSecrets.add(form);
  }
}

// scheme://user:password@ (also when the URL does not parse): the password part.
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@]*@/gi;
// password=... in a query string or a key=value connection string.
const PASSWORD_PARAMETER = /\b((?:ssl)?password=)[^\s&]*/gi;

/**
 * A private key's PEM text: the whole of it, and each line of its body on its own, since a
 * library that prints connection options may cut the text or quote it line by line.
 */
export function registerPrivateKey(pem: string): void {
  registerSecret(pem);
  for (const line of pem.split(/\r?\n/)) if (line.length >= 16 && !line.startsWith('-----')) registerSecret(line);
}

/** The text with every known secret and every URL password replaced by ***. */
export function scrubSecrets(text: string): string {
  // Known secrets first: a password holding `@` cut short by URL_PASSWORD (which stops at the
  // first `@`) would no longer match whole, and its tail would show.
  let out = text;
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join(HIDDEN);
  }
  return out.replace(URL_PASSWORD, `$1:${HIDDEN}@`).replace(PASSWORD_PARAMETER, `$1${HIDDEN}`);
}

/**
 * A URL fit to print: its password (in the user part or a `password` parameter) hidden.
 * A value that does not parse as a URL is not shown at all, since where its password would
 * be cannot be told.
 */
export function redactUrl(value: string): string {
  // Without `//` there is no user part to find (`postgres:/u:pw@h` parses, as an opaque path).
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value.includes('@') ? NOT_SHOWN : value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return NOT_SHOWN;
  }
  let changed = false;
  if (url.password) {
    url.password = HIDDEN;
    changed = true;
  }
  for (const name of ['password', 'sslpassword']) {
    if (url.searchParams.has(name)) {
      url.searchParams.set(name, HIDDEN);
      changed = true;
    }
  }
  return changed ? url.toString().replaceAll(encodeURIComponent(HIDDEN), HIDDEN) : value;
}

/** Percent-decoded, or as it is when it holds a broken escape. */
export function decodeOrKeep(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
