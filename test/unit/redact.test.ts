import { format } from 'node:util';
import { describe, expect, it } from 'vitest';
import { redactUrl, registerPrivateKey, registerSecret, scrubSecrets } from '../../src/redact';

describe('redactUrl', () => {
  it("hides a URL's password, in the user part and as a parameter, and leaves other URLs as they are", () => {
    expect(redactUrl('postgres://hunt:pw@db:5432/hunt')).toBe('postgres://hunt:***@db:5432/hunt');
    expect(redactUrl('postgres://hunt@db/hunt?password=pw&application_name=x')).toBe('postgres://hunt@db/hunt?password=***&application_name=x');
    expect(redactUrl('postgres://hunt@db/hunt')).toBe('postgres://hunt@db/hunt');
  });

  it('shows nothing of a value that does not parse', () => {
    expect(redactUrl('postgres://hunt:pw@db:port/hunt')).not.toContain('pw');
  });
});

describe('scrubSecrets', () => {
  it('hides registered secrets, their URL-encoded form, and any URL password', () => {
    registerSecret('s3cret/with+chars');
    const text = scrubSecrets('a s3cret/with+chars b s3cret%2Fwith%2Bchars c mysql://u:other@h/x d password=abc&e');
    expect(text).toBe('a *** b *** c mysql://u:***@h/x d password=***&e');
  });

  it('hides a secret with quotes and backslashes as JSON and util.format escape it', () => {
    const secret = `pa"ss\\w0'rd-Leak`;
    registerSecret(secret);
    for (const line of [JSON.stringify({ err: { message: `auth failed for ${secret}` } }), format('%o', { password: secret }), format('%s', { password: secret })]) {
      expect(line).not.toContain(secret); // the escaped form is what would leak
      const scrubbed = scrubSecrets(line);
      expect(scrubbed).toContain('***');
      expect(scrubbed).not.toMatch(/w0.?.?rd-Leak/);
    }
  });

  it('hides the whole of a password holding @ in a URL, whose regex stops at the first @', () => {
    registerSecret('pa@ssw0rd-at');
    const text = scrubSecrets('connect postgres://hunt:pa@ssw0rd-at@db/hunt failed');
    expect(text).not.toContain('ssw0rd');
    expect(text).toBe('connect postgres://hunt:***@db/hunt failed');
  });

  it("hides a private key's text, whole, JSON-escaped, or one line of it", () => {
    const body = ['MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7', 'VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZH'];
    const pem = `-----BEGIN PRIVATE KEY-----\n${body.join('\n')}\n-----END PRIVATE KEY-----\n`;
    registerPrivateKey(pem);
    for (const line of [`key: ${pem}`, JSON.stringify({ ssl: { key: pem } }), `options {"key":"-----BEGIN PRIVATE KEY-----\\n${body[0]}...`]) {
      const scrubbed = scrubSecrets(line);
      for (const part of body) expect(scrubbed).not.toContain(part);
      expect(scrubbed).toContain('***');
    }
    expect(scrubSecrets('-----BEGIN PRIVATE KEY-----')).toBe('-----BEGIN PRIVATE KEY-----'); // the markers are no secret
  });

  it('ignores secrets too short to hide without mangling every line', () => {
    registerSecret('ab');
    expect(scrubSecrets('abc')).toBe('abc');
  });
});
