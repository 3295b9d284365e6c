-- The fleet slab curve reads fleet_slab_buckets by time (bucket >= now() - its
-- window, every refresh of every wanted window) and retention deletes by time
-- (bucket < cutoff); the primary key leads with firmware_version, so without
-- this index both scanned the whole table (~430k rows at 50 firmware builds
-- kept 30 days). A separate migration, not an edit of 0080: 0080 is on main and
-- may have been applied. Under Citus a reference table: the index goes to every
-- node with it.
CREATE INDEX fleet_slab_buckets_time ON fleet_slab_buckets (bucket);
