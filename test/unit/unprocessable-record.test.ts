/** A record the database refused, made a reject: its bytes kept as classify keeps a reject's. */
import { describe, expect, it } from 'vitest';
import { MAX_KEPT_BYTES } from '../../src/pipeline/classify';
import { unprocessableRecord } from '../../src/pipeline/commit';

describe('unprocessableRecord', () => {
  it("keeps the first MAX_KEPT_BYTES of the key, so the check after a join finds the quarantine row by the bytes it reads again", () => {
    const key = Buffer.alloc(MAX_KEPT_BYTES + 5, 0x6b);
    const value = Buffer.from('{"eventId":"e"}');
    const refused = Object.assign(new Error('value too long for type character varying(64)'), { code: '22001' });
    const reject = unprocessableRecord({ topic: 't', partition: 1, offset: '9', key, value }, refused);
    expect(reject.key?.length).toBe(MAX_KEPT_BYTES);
    expect(reject.value).toBe(value);
    expect(reject).toMatchObject({ topic: 't', partition: 1, offset: '9', reason: 'unprocessable' });
    expect(unprocessableRecord({ topic: 't', partition: 1, offset: '9', key: null, value }, refused).key).toBeNull();
  });
});
