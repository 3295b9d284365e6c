-- Leak analysis tables (kmemfleet.server.analysis), maintained incrementally from
-- analysis_queue. Queries read only analysis_summary / analysis_cohorts.

-- Per (device, boot, subject, key) 15-minute buckets: last value, min, max.
-- subject: 1 stack (key = stack id, decimal), 2 slab cache (key = name[#occurrence]).
CREATE TABLE analysis_buckets (
    device_id  text NOT NULL,
    boot_id    text NOT NULL,
    subject    smallint NOT NULL,
    key        text NOT NULL,
    bucket     timestamptz NOT NULL,
    last_at    timestamptz NOT NULL,
    last_value bigint NOT NULL,
    min_value  bigint NOT NULL,
    max_value  bigint NOT NULL,
    PRIMARY KEY (device_id, boot_id, subject, key, bucket)
);

-- The buckets in which a boot sent anything: the grid on which an unchanged
-- key (absent from deltas) carries its value forward.
CREATE TABLE analysis_boot_buckets (
    device_id text NOT NULL,
    boot_id   text NOT NULL,
    bucket    timestamptz NOT NULL,
    PRIMARY KEY (device_id, boot_id, bucket)
);

-- The verdict of each series (see trend.py), recomputed when its boot gets data.
CREATE TABLE analysis_series (
    device_id        text NOT NULL,
    boot_id          text NOT NULL,
    subject          smallint NOT NULL,
    key              text NOT NULL,
    firmware_version text NOT NULL,
    signature        text NOT NULL,
    kind             text NOT NULL,
    leaking          boolean NOT NULL,
    slope            double precision NOT NULL,
    p_value          double precision NOT NULL,
    growth           double precision NOT NULL,
    confidence       double precision NOT NULL,
    span_hours       double precision NOT NULL,
    points           integer NOT NULL,
    last_value       bigint NOT NULL,
    PRIMARY KEY (device_id, boot_id, subject, key)
);
CREATE INDEX analysis_series_cohort ON analysis_series (firmware_version, subject, signature);

-- (firmware, subject, signature) whose summary must be recomputed.
CREATE TABLE analysis_dirty (
    firmware_version text NOT NULL,
    subject          smallint NOT NULL,
    signature        text NOT NULL,
    PRIMARY KEY (firmware_version, subject, signature)
);

-- Per-firmware cohort summary of each signature: what `leaks` and `diff` read.
CREATE TABLE analysis_summary (
    firmware_version   text NOT NULL,
    subject            smallint NOT NULL,
    signature          text NOT NULL,
    representative     text NOT NULL,
    devices_observed   integer NOT NULL,
    devices_leaking    integer NOT NULL,
    share_leaking      double precision NOT NULL,
    median_slope       double precision NOT NULL,
    p90_slope          double precision NOT NULL,
    total_leaked       double precision NOT NULL,
    projected_hours    double precision NOT NULL,
    confidence         double precision NOT NULL,
    score              double precision NOT NULL,
    PRIMARY KEY (firmware_version, subject, signature)
);
CREATE INDEX analysis_summary_rank ON analysis_summary (firmware_version, score DESC)
    WHERE devices_leaking > 0;
CREATE INDEX analysis_summary_signature ON analysis_summary (signature)
    WHERE devices_leaking > 0;

-- Devices per firmware cohort and samples folded, for the response header.
CREATE TABLE analysis_cohorts (
    firmware_version text PRIMARY KEY,
    devices          integer NOT NULL,
    samples          bigint NOT NULL DEFAULT 0
);
