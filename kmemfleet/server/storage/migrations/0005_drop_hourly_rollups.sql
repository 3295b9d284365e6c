-- Drop the hourly rollups (issue 13): maintenance re-aggregated 48 h of raw
-- samples into them every run and nothing read them. Long views come from the
-- analysis tables (analysis_buckets, analysis_series, analysis_summary).
-- A storage slot (0001-0049): it runs after 0060 on databases that have that.
DROP TABLE IF EXISTS stack_samples_hourly, slab_samples_hourly;
