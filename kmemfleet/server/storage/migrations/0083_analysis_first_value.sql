-- Every verdict records the first value it judged (trend.judge); before, flat,
-- decreasing, sawtooth, trough-leak and insufficient verdicts stored 0, which
-- the fleet step read as "held nothing near boot" (ranking._boot_bytes). Judge
-- those boots again; their other series are re-judged with them, unchanged.
INSERT INTO analysis_touched (device_id, boot_id)
SELECT DISTINCT device_id, boot_id FROM analysis_series
 WHERE first_value = 0
   AND kind IN ('flat', 'decreasing', 'sawtooth', 'leak', 'insufficient')
ON CONFLICT DO NOTHING;
