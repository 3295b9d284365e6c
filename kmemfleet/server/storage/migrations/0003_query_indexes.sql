-- ListDevices filters by labels (labels @> $2::jsonb): a GIN index keeps that
-- fast at 100,000 devices. (A stack's series on one device is served by
-- stack_samples_device from 0001.)
CREATE INDEX IF NOT EXISTS devices_labels ON devices USING gin (labels jsonb_path_ops);
