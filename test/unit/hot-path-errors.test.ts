/** Which database failures the hot path blames on the records (isolating them) and which it waits out. */
import { describe, expect, it } from 'vitest';
import { isDataError, isSeqCollision, ranOutOfTime } from '../../src/store/hot-path/errors';

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

  it('waits out a seq a stored event holds: the sequence is behind, no record is at fault', () => {
    const collision = Object.assign(pgError('23505', 'duplicate key value violates unique constraint "events_seq_key"'), { constraint: 'events_seq_key' });
    expect(isDataError(collision)).toBe(false);
    expect(isSeqCollision(collision)).toBe(true);
    // A quarantine row's id or a drift row's: their sequences are behind alike.
    for (const constraint of ['quarantine_pkey', 'reconcile_drift_pkey']) {
      const taken = Object.assign(pgError('23505', `duplicate key value violates unique constraint "${constraint}"`), { constraint });
      expect(isDataError(taken)).toBe(false);
      expect(isSeqCollision(taken)).toBe(true);
    }
    // Any other unique key is the records' doing.
    const other = Object.assign(pgError('23505', 'duplicate key value violates unique constraint "quarantine_source_record"'), { constraint: 'quarantine_source_record' });
    expect(isDataError(other)).toBe(true);
    expect(isSeqCollision(other)).toBe(false);
  });

  it('waits out outages', () => {
    expect(isDataError(pgError('08006', 'connection failure'))).toBe(false);
    expect(isDataError(pgError('57P01', 'terminating connection due to administrator command'))).toBe(false);
    expect(isDataError(new Error('Connection terminated unexpectedly'))).toBe(false);
  });
});

describe('ranOutOfTime', () => {
  it('is a statement cancelled at its limit, a session ended at its transaction_timeout, or a client that stopped waiting: a smaller part may fit', () => {
    expect(ranOutOfTime(pgError('57014', 'canceling statement due to statement timeout'))).toBe(true);
    // Postgres 17: a transaction_timeout a role or database sets ends the session, on every retry of the same micro-batch.
    expect(ranOutOfTime(pgError('25P04', 'terminating connection due to transaction timeout'))).toBe(true);
    expect(ranOutOfTime(new Error('Query read timeout'))).toBe(true);
  });

  it('is not an outage, nor a session ended for idling in its transaction', () => {
    expect(ranOutOfTime(pgError('25P03', 'terminating connection due to idle-in-transaction timeout'))).toBe(false);
    expect(ranOutOfTime(pgError('57P01', 'terminating connection due to administrator command'))).toBe(false);
    expect(ranOutOfTime(new Error('Connection terminated unexpectedly'))).toBe(false);
  });
});
