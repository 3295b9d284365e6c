-- The stack page's per-boot lines (kmemfleet/server/web/series.py, boot_curves)
-- need, per line, where the stack's buckets begin and end (the common thinning
-- step comes from the longest line, and each line keeps its own first and last
-- bucket) and when the boot began (uptime = time - start). Read at request time
-- that was ~40k bucket rows for 60 week-long boots, plus every snapshot of those
-- boots; the re-judge (analysis/incremental.py `_rejudge`) already reads every
-- bucket of a boot and its start, so it now keeps them on each series:
--   first_bucket, last_bucket: the series' first and last analysis bucket;
--   boot_start: its boot's start, epoch seconds, as analysis.curves.boot_starts
--               computes it (the first remaining snapshot's capture time less
--               its uptime).
-- NULL means "not known": the reader computes that line from the buckets and
-- snapshots as before. Retention sets them to NULL for the boots whose oldest
-- data it drops (the re-judge it asks for restates them), so do a re-judge set
-- aside (quarantined).
ALTER TABLE analysis_series
    ADD COLUMN IF NOT EXISTS first_bucket timestamptz,
    ADD COLUMN IF NOT EXISTS last_bucket timestamptz,
    ADD COLUMN IF NOT EXISTS boot_start double precision;

-- A populated database: every series with buckets and a boot with snapshots, in
-- one pass over analysis_buckets and one over the snapshots (docs/deploy.md:
-- the upgrade's cost).
UPDATE analysis_series s
   SET first_bucket = e.first_bucket, last_bucket = e.last_bucket, boot_start = b.started
  FROM (SELECT device_id, boot_id, subject, key,
               min(bucket) AS first_bucket, max(bucket) AS last_bucket
          FROM analysis_buckets GROUP BY 1, 2, 3, 4) e,
       (SELECT DISTINCT ON (device_id, boot_id) device_id, boot_id,
               extract(epoch FROM captured_at) - uptime_seconds AS started
          FROM snapshots ORDER BY device_id, boot_id, seq) b
 WHERE s.device_id = e.device_id AND s.boot_id = e.boot_id AND s.subject = e.subject
   AND s.key = e.key AND b.device_id = s.device_id AND b.boot_id = s.boot_id;
