-- Drop the hourly rollups (issue 13): maintenance re-aggregated 48 h of raw
-- samples into them every run and nothing read them (the analysis keeps its
-- own buckets). A storage slot (0001-0049): it runs after 0060 where that is.
DROP TABLE IF EXISTS stack_samples_hourly, slab_samples_hourly;
