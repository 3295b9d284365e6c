-- Per (firmware, subject, signature): the fleet curve the console plots beside a
-- ranking row (outstanding bytes against uptime in hour bins: p10, median and
-- p90 across up to 20 boots, leaking ones first). The analysis worker rewrites
-- a signature's curve whenever it refreshes that signature's summary
-- (analysis/curves.py), so the console reads one indexed row per curve instead
-- of every boot's 15-minute points.
--
-- No device_id column: under Citus (0090) it is a reference table, like
-- analysis_summary, keyed the same way.
CREATE TABLE analysis_curves (
    firmware_version text NOT NULL,
    subject          smallint NOT NULL,
    signature        text NOT NULL,
    uptime_h         double precision[] NOT NULL,
    p10              bigint[] NOT NULL,
    median           bigint[] NOT NULL,
    p90              bigint[] NOT NULL,
    refreshed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (firmware_version, subject, signature)
);

-- Summaries refreshed before this migration have no curve yet: refresh them all.
INSERT INTO analysis_dirty (firmware_version, subject, signature)
SELECT firmware_version, subject, signature FROM analysis_summary
ON CONFLICT DO NOTHING;
