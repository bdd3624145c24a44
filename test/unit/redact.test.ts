import { format } from 'node:util';
import { describe, expect, it } from 'vitest';
import { redactUrl, registerSecret, scrubSecrets } from '../../src/redact';

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

  it('ignores secrets too short to hide without mangling every line', () => {
    registerSecret('ab');
    expect(scrubSecrets('abc')).toBe('abc');
  });
});
