-- A reprocess fill chunk in flight. The shadow tables are now filled without their indexes,
-- which are built once the fill is done (a sorted build costs about half of what keeping
-- them up row by row did, experiments §69). Without an index, removing the rows a crashed
-- attempt of a chunk left (its extra lanes commit before the cursor moves) means reading a
-- whole shadow, so the fill does it only when it must: each attempt marks the job with a
-- token of its own, in a transaction of its own before any lane writes, and clears it as the
-- cursor moves (NULL: no chunk in flight). An attempt that finds a mark there clears every
-- row past the cursor first; one whose token was replaced before it claimed the job retries.
--
-- A job row made before this migration counts as marked: nothing is known of its last chunk.
-- (The default is dropped at once: it stays the value of the rows that exist, new rows get NULL.)
--
-- Not marked compatible with older versions: their fill writes into the shadows with
-- ON CONFLICT, which needs the unique indexes the new prepare leaves off until the end.
ALTER TABLE reprocess_jobs ADD COLUMN fill_mark text DEFAULT 'before migration 019';
ALTER TABLE reprocess_jobs ALTER COLUMN fill_mark DROP DEFAULT;
