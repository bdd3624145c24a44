/** Which database failures the hot path blames on the records (isolating them) and which it waits out. */
import { describe, expect, it } from 'vitest';
import { isDataError } from '../../src/store/hot-path/errors';

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('isDataError', () => {
  it('blames the records for what their content causes', () => {
    expect(isDataError(pgError('22P02', 'invalid input syntax for type integer'))).toBe(true);
    expect(isDataError(pgError('23514', 'new row violates check constraint'))).toBe(true);
    expect(isDataError(pgError('54000', 'index row size 9000 exceeds btree version 4 maximum 2704 for index "events_pkey"'))).toBe(true);
  });

  it('waits out a full NOTIFY queue, which no record causes and every isolation would meet again at COMMIT', () => {
    expect(isDataError(pgError('54000', 'too many notifications in the NOTIFY queue'))).toBe(false);
    // In another language, by the routine that raises it.
    expect(isDataError(Object.assign(pgError('54000', 'zu viele Benachrichtigungen in der NOTIFY-Schlange'), { routine: 'PreCommit_Notify' }))).toBe(false);
  });

  it('waits out outages', () => {
    expect(isDataError(pgError('08006', 'connection failure'))).toBe(false);
    expect(isDataError(pgError('57P01', 'terminating connection due to administrator command'))).toBe(false);
    expect(isDataError(new Error('Connection terminated unexpectedly'))).toBe(false);
  });
});
