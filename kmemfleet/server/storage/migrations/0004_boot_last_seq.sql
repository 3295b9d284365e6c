-- Dedupe on (device_id, boot_id, seq), as snapshot.proto promises (issue 18): the
-- snapshots key also holds captured_at, its partition key, so each boot keeps the
-- newest seq stored. A seq at or below it is a duplicate when that seq is stored
-- (whatever its capture time) and refused otherwise; a delta's base must be stored.
ALTER TABLE boots ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;
UPDATE boots b SET last_seq = s.top
  FROM (SELECT device_id, boot_id, max(seq) AS top FROM snapshots GROUP BY 1, 2) s
 WHERE s.device_id = b.device_id AND s.boot_id = b.boot_id;
