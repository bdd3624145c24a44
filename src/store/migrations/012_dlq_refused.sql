-- Why the DLQ topic refused a copy for the record itself (its Kafka error type and message),
-- for as long as the copy waits. A topic that refuses one record for good (a compacted DLQ and
-- a reject without a key: INVALID_RECORD) used to fail the relay's whole pass again and again,
-- and every copy behind it waited for ever. Now the relay sets such a copy aside: it records
-- the reason here and leases the row away from the passes for a while (`dlq_claimed_until`),
-- sends the copies behind it, and tries the refused one again when the lease ends, so a topic
-- put right takes it without anyone's help (src/ingest/dlq-relay.ts).
--
-- Upgrading: adding a column without a default is instant.
ALTER TABLE quarantine ADD COLUMN dlq_refused text;
