import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DETAIL_BYTES, toDetailText } from '../../src/events/detail-text';
import { classifyRecord } from '../../src/events/validate';

const isWellFormed = (s: string) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

describe('toDetailText', () => {
  it('leaves short printable text as it is', () => {
    expect(toDetailText('payload.points: expected integer 0-1000, got 1001 — ✓ 🎉')).toBe('payload.points: expected integer 0-1000, got 1001 — ✓ 🎉');
  });

  it('escapes NUL and other control characters, and replaces lone surrogates', () => {
    expect(toDetailText('a\u0000b\u001fc\u007fd\u0085e')).toBe('a\\u0000b\\u001fc\\u007fd\\u0085e');
    expect(toDetailText('x\ud800y\udc00z')).toBe('x\ufffdy\ufffdz');
  });

  it('cuts at 1 KiB of UTF-8 on a character boundary, marking the cut', () => {
    const cut = toDetailText('é'.repeat(2000));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(MAX_DETAIL_BYTES);
    expect(cut.endsWith('…')).toBe(true);
    expect(cut).toMatch(/^é+…$/);
    expect(toDetailText('a'.repeat(MAX_DETAIL_BYTES))).toBe('a'.repeat(MAX_DETAIL_BYTES));
    expect(toDetailText('a'.repeat(MAX_DETAIL_BYTES + 1))).toHaveLength(MAX_DETAIL_BYTES - 3 + 1);
  });

  it('always gives well-formed text without control characters, at most 1 KiB, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 3000 }), (raw) => {
        const text = toDetailText(raw);
        expect(Buffer.byteLength(text, 'utf8')).toBeLessThanOrEqual(MAX_DETAIL_BYTES);
        expect(isWellFormed(text)).toBe(true);
        expect([...text].some((ch) => ch.charCodeAt(0) < 0x20 || (ch.charCodeAt(0) >= 0x7f && ch.charCodeAt(0) <= 0x9f))).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it("is what the classifier puts in a reject's detail (schema-registry framing quoted by JSON.parse)", () => {
    const result = classifyRecord(Buffer.from([0, 0, 0, 0, 1, 0x7b, 0x7d]), new Date());
    expect(result).toMatchObject({ ok: false, reason: 'invalid_json' });
    if (!result.ok) expect(result.detail).not.toContain('\u0000');
    const keys = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`unknown_key_${i}`, i]));
    const many = classifyRecord(Buffer.from(JSON.stringify({ eventId: 'e', type: 'player.left', schemaVersion: 1, huntId: 'h', playerId: 'p', occurredAt: '2026-01-01T00:00:00Z', payload: keys })), new Date());
    expect(many.ok).toBe(false);
    if (!many.ok) expect(Buffer.byteLength(many.detail)).toBeLessThanOrEqual(MAX_DETAIL_BYTES);
  });
});
