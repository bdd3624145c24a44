-- The DLQ copies as an outbox. The hot path used to copy a micro-batch's rejects to the DLQ
-- topic before committing it, so a DLQ that refused every send (its topic deleted where it
-- may not be created, a missing WRITE permission, too few in-sync replicas) held that
-- micro-batch, and everything behind it, for ever. Now a reject's quarantine row, committed
-- with its micro-batch, says its copy is still to be sent (`dlq_pending`), and the DLQ relay
-- of `hunt ingest` sends it and clears the flag afterwards (src/ingest/dlq-relay.ts).
-- `dlq_claimed_until`: a relay's lease on the rows it is sending, so the group's other
-- members leave them alone until it has sent them or died.
--
-- Upgrading: adding the columns is instant (constant default); the index is built under a
-- lock that waits for the hot path's commits, on a table of rejects only.
ALTER TABLE quarantine
  ADD COLUMN dlq_pending boolean NOT NULL DEFAULT false,
  ADD COLUMN dlq_claimed_until timestamptz;
CREATE INDEX quarantine_dlq_pending ON quarantine (id) WHERE dlq_pending;
