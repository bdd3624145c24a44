-- Where a partition's position was first set when nothing had been read yet (INGEST_START_FROM,
-- or a partition added later). After a join the hot path checks the record before the stored
-- position against what was applied there; at a position it only started from, nothing was,
-- and the check must be skipped, not taken for a replaced log (src/ingest/positions.ts).
ALTER TABLE consumer_offsets ADD COLUMN start_offset bigint;
