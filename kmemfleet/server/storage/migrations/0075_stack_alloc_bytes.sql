-- Outstanding bytes as the allocator holds them (issue 17): StackSample.alloc_bytes,
-- from mlt.ko's report 1.2 (slab: the object size /proc/slabinfo counts, next to
-- the requested `bytes`). 0 where the source does not say (older agents, mlt.ko
-- before 1.2, other sources). Stored as sent; no ranking reads it yet.
ALTER TABLE stack_samples ADD COLUMN alloc_bytes bigint NOT NULL DEFAULT 0;
