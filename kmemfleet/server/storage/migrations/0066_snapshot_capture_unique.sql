-- One snapshot per (device, boot, capture time): an agent never captures twice
-- in the same microsecond, so a second row with another seq is the same
-- snapshot sent again under a new number (an agent that renumbered its spool
-- after its seqs were found taken, a bundle imported before and after import
-- got its own seq space). The insert's ON CONFLICT DO NOTHING then answers it
-- DUPLICATE. Rows that already repeat a capture time keep their lowest seq.
WITH ranked AS (
    SELECT device_id, boot_id, seq, captured_at,
           row_number() OVER (PARTITION BY device_id, boot_id, captured_at ORDER BY seq) AS n
      FROM snapshots
), dup AS (
    SELECT device_id, boot_id, seq, captured_at FROM ranked WHERE n > 1
), slab AS (
    DELETE FROM slab_samples x USING dup
     WHERE x.device_id = dup.device_id AND x.boot_id = dup.boot_id
       AND x.seq = dup.seq AND x.captured_at = dup.captured_at
), stack AS (
    DELETE FROM stack_samples x USING dup
     WHERE x.device_id = dup.device_id AND x.boot_id = dup.boot_id
       AND x.seq = dup.seq AND x.captured_at = dup.captured_at
), queued AS (
    DELETE FROM analysis_queue x USING dup
     WHERE x.device_id = dup.device_id AND x.boot_id = dup.boot_id
       AND x.seq = dup.seq AND x.captured_at = dup.captured_at
)
DELETE FROM snapshots x USING dup
 WHERE x.device_id = dup.device_id AND x.boot_id = dup.boot_id
   AND x.seq = dup.seq AND x.captured_at = dup.captured_at;

CREATE UNIQUE INDEX IF NOT EXISTS snapshots_capture ON snapshots (device_id, boot_id, captured_at);
