-- Saturation and the fleet-wide decision (docs/ranking.md, sections 1 and 3).
-- Per series: where in uptime it was judged, its first value, and for a
-- converging series the level it approaches and how long it takes to settle.
ALTER TABLE analysis_series
    ADD COLUMN uptime_start double precision NOT NULL DEFAULT 0,
    ADD COLUMN first_value  bigint NOT NULL DEFAULT 0,
    ADD COLUMN level        double precision NOT NULL DEFAULT 0,
    ADD COLUMN settle_hours double precision NOT NULL DEFAULT 0;

-- Per signature: leak | saturating | none, the level a saturating subject
-- settles at, and on which series the verdict rests.
ALTER TABLE analysis_summary
    ADD COLUMN verdict  text NOT NULL DEFAULT 'none',
    ADD COLUMN level    double precision NOT NULL DEFAULT 0,
    ADD COLUMN evidence text NOT NULL DEFAULT '';
CREATE INDEX analysis_summary_saturating ON analysis_summary (firmware_version, level DESC)
    WHERE verdict = 'saturating';

-- Verdicts judged before this migration lack uptimes: judge every boot again.
INSERT INTO analysis_touched (device_id, boot_id)
SELECT DISTINCT device_id, boot_id FROM analysis_series
ON CONFLICT DO NOTHING;
