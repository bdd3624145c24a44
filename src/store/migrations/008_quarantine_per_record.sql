-- A quarantine row is unique per source position AND the bytes kept of its record. Before, it
-- was unique per position alone, so after a topic was recreated (or its log truncated and
-- written again) a reject of the new log at an offset the old log had quarantined too was
-- dropped by ON CONFLICT DO NOTHING: a malformed record lost without a trace. A record
-- delivered again at its position has the same bytes, so it is still kept once
-- (src/store/hot-path/quarantine.ts). The digest is of the bytes kept (at most 1 MiB), with
-- a first byte that tells a record without a value from one with an empty value.
--
-- Upgrading: adding the column rewrites the table (a digest per row) under an exclusive
-- lock, and the old unique key goes; see docs/operators.md#upgrading.
ALTER TABLE quarantine
  ADD COLUMN record_digest bytea NOT NULL GENERATED ALWAYS AS (
    sha256(CASE WHEN record_value IS NULL THEN '\x00'::bytea ELSE '\x01'::bytea || record_value END)
  ) STORED;
ALTER TABLE quarantine DROP CONSTRAINT quarantine_source_topic_source_partition_source_offset_key;
ALTER TABLE quarantine ADD CONSTRAINT quarantine_source_record UNIQUE (source_topic, source_partition, source_offset, record_digest);
