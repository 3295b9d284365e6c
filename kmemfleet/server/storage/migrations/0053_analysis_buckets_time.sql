-- Keyframe zeroing reads a boot's bucket rows since its previous keyframe: by
-- time, across keys. Without this index it read every row of the boot, so its
-- cost grew with the boot's age.
CREATE INDEX analysis_buckets_boot_time ON analysis_buckets (device_id, boot_id, subject, bucket);
