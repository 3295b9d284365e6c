-- The fleet page's slab curve (mean meminfo "Slab" per snapshot, per firmware,
-- over time) as a rollup the analysis fold keeps: per firmware and 5-minute
-- bucket, the sum of the snapshots' Slab and how many snapshots gave one. Each
-- snapshot is added once, when its analysis_queue row is folded (in the fold's
-- transaction), so the console reads at most 12 rows per firmware and hour of
-- its window instead of scanning every snapshot of it (seconds at 10,000
-- devices, the whole database busy on each refresh). Rows older than the
-- analysis buckets' retention cutoff go with them (analysis/retention.py).
--
-- No device_id column: under Citus (0090) a reference table, like
-- analysis_summary.
CREATE TABLE fleet_slab_buckets (
    firmware_version text NOT NULL,
    bucket           timestamptz NOT NULL,
    slab_sum         double precision NOT NULL,
    snapshots        bigint NOT NULL,
    PRIMARY KEY (firmware_version, bucket)
);

-- A populated database: the snapshots stored so far, except those still queued
-- (their fold adds them).
INSERT INTO fleet_slab_buckets (firmware_version, bucket, slab_sum, snapshots)
SELECT s.firmware_version,
       to_timestamp(floor(extract(epoch FROM s.captured_at) / 300) * 300),
       sum((s.meminfo->>'Slab')::float8), count(*)
  FROM snapshots s
  LEFT JOIN analysis_queue q
    ON q.device_id = s.device_id AND q.boot_id = s.boot_id AND q.seq = s.seq
   AND q.captured_at = s.captured_at
 WHERE s.meminfo ? 'Slab' AND jsonb_typeof(s.meminfo->'Slab') = 'number'
   AND q.device_id IS NULL
 GROUP BY 1, 2;
