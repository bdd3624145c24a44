-- The DLQ copies as an outbox. The hot path used to copy a micro-batch's rejects to the DLQ
-- topic before committing it, so a DLQ that refused every send (its topic deleted where it
-- may not be created, a missing WRITE permission, too few in-sync replicas) held that
-- micro-batch, and everything behind it, for ever. Now a reject's quarantine row, committed
-- with its micro-batch, says its copy is still to be sent (`dlq_pending`), and the DLQ relay
-- of `hunt ingest` sends it and records when (`dlq_sent_at`; src/ingest/dlq-relay.ts).
-- `dlq_claimed_until`: a relay's lease on the rows it is sending, so the group's other
-- members leave them alone until it has sent them or died; its value also tells one claim
-- from the next.
--
-- Upgrading: adding the columns is instant (no default to write); building the index holds
-- quarantine's lock (and the hot path's commits that carry rejects) for a scan of the table:
-- well under a second for thousands of rows, seconds for millions.
ALTER TABLE quarantine
  ADD COLUMN dlq_pending boolean NOT NULL DEFAULT false,
  ADD COLUMN dlq_claimed_until timestamptz,
  ADD COLUMN dlq_sent_at timestamptz;
CREATE INDEX quarantine_dlq_pending ON quarantine (source_topic, id) WHERE dlq_pending;
