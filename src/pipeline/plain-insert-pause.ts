/**
 * When a micro-batch may go with a plain insert (commitMicroBatch's `plainInsert`): always,
 * but for the PAUSE_AFTER_CONFLICT ones after a plain insert met a stored eventId. Each such
 * conflict costs a transaction (the batch goes again with ON CONFLICT); the pause keeps
 * traffic full of old duplicates from doubling every batch's cost (src/ingest/known-events.ts).
 */

/** Micro-batches committed the ordinary way after a plain insert met a stored eventId. */
export const PAUSE_AFTER_CONFLICT = 64;

export class PlainInsertPause {
  private pausedFor = 0;

  /** Whether the next micro-batch may go with a plain insert; counts down a pause. */
  take(): boolean {
    if (this.pausedFor === 0) return true;
    this.pausedFor--;
    return false;
  }

  /** A plain insert met a stored eventId. */
  conflicted(): void {
    this.pausedFor = PAUSE_AFTER_CONFLICT;
  }
}
