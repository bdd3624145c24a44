-- A quarantine row's digest covers its record's key as well as its value. Migration 008
-- made a row unique per position and value bytes: after a topic was recreated (or its log
-- truncated and written again), a reject of the new log whose value matched the old log's
-- reject at the same offset (a tombstone, a `{}`) but whose key differed was taken as the
-- same record delivered again and dropped: neither quarantined nor copied to the DLQ.
--
-- The digest is the value's (as in 008, which positions.ts compares with a record read
-- again) followed by the key's, each with a first byte that tells no bytes from empty
-- bytes: 64 bytes. The unique key keeps its name and columns, so an older `hunt ingest`
-- still running inserts as before.
--
-- Upgrading: replacing the column rewrites `quarantine` under an exclusive lock, as 008 did;
-- see docs/operators.md#upgrading.
ALTER TABLE quarantine DROP COLUMN record_digest;
ALTER TABLE quarantine
  ADD COLUMN record_digest bytea NOT NULL GENERATED ALWAYS AS (
    sha256(CASE WHEN record_value IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || record_value END)
    || sha256(CASE WHEN record_key IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || record_key END)
  ) STORED;
ALTER TABLE quarantine ADD CONSTRAINT quarantine_source_record UNIQUE (source_topic, source_partition, source_offset, record_digest);
