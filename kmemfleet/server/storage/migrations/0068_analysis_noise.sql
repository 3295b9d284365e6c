-- Uptime contrast (docs/ranking.md, section 3, rule U): a series that does not
-- rise is evidence that a subject has stopped growing only when the cohort's
-- growth rate would have stood out of its noise, so each verdict keeps the
-- robust sigma of its values around their trend, and that trend (the Theil-Sen
-- slope of the values themselves: a sawing series' slope is its troughs').
ALTER TABLE analysis_series
    ADD COLUMN noise double precision NOT NULL DEFAULT 0,
    ADD COLUMN trend double precision NOT NULL DEFAULT 0;

-- Verdicts judged before this migration lack it: judge every boot again.
INSERT INTO analysis_touched (device_id, boot_id)
SELECT DISTINCT device_id, boot_id FROM analysis_series
ON CONFLICT DO NOTHING;
