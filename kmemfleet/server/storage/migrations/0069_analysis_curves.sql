-- Per (firmware, subject, signature): the fleet curve the console plots beside a
-- ranking row (outstanding bytes against uptime in hour bins: p10, median and
-- p90 across up to 20 boots, leaking ones first). The analysis worker marks a
-- signature's curve in analysis_curves_dirty whenever it refreshes that
-- signature's summary and rewrites at most CURVES_PER_PASS marked curves per
-- pass, those without a curve or with the oldest first (analysis/curves.py), so
-- the console reads one indexed row per curve instead of every boot's 15-minute
-- points, and a fleet that dirties every signature on every pass does not pay
-- for every curve on every pass.
--
-- No device_id column: under Citus (0090) both are reference tables, like
-- analysis_summary and analysis_dirty, keyed the same way.
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

CREATE TABLE analysis_curves_dirty (
    firmware_version text NOT NULL,
    subject          smallint NOT NULL,
    signature        text NOT NULL,
    PRIMARY KEY (firmware_version, subject, signature)
);

-- A populated database has summaries without curves: the worker builds them,
-- CURVES_PER_PASS per pass (not all in the first pass after the upgrade, which
-- would hold the analysis lock for as long as that takes).
INSERT INTO analysis_curves_dirty (firmware_version, subject, signature)
SELECT firmware_version, subject, signature FROM analysis_summary
ON CONFLICT DO NOTHING;
