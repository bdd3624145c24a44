-- A quarantine row is unique per source position AND the bytes kept of its record. Before, it
-- was unique per position alone, so after a topic was recreated (or its log truncated and
-- written again) a reject of the new log at an offset the old log had quarantined too was
-- dropped by ON CONFLICT DO NOTHING: a malformed record lost without a trace. A record
-- delivered again at its position has the same bytes, so it is still kept once
-- (src/store/hot-path/quarantine.ts). The digest is of the bytes kept (at most 1 MiB).
ALTER TABLE quarantine
  ADD COLUMN record_digest bytea NOT NULL GENERATED ALWAYS AS (sha256(coalesce(record_value, ''::bytea))) STORED;
ALTER TABLE quarantine DROP CONSTRAINT quarantine_source_topic_source_partition_source_offset_key;
ALTER TABLE quarantine ADD CONSTRAINT quarantine_source_record UNIQUE (source_topic, source_partition, source_offset, record_digest);
