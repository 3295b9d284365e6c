-- What kind of kernel memory a stack holds (issue 17): the agent's MemoryKind
-- (0 unspecified = slab, as every agent before it sent; 1 slab, 2 pages,
-- 3 vmalloc). Signatures of non-slab kinds carry the kind as a prefix
-- ("vmalloc: caller [mod]"), so they never match a slab stack's signature.
ALTER TABLE stacks ADD COLUMN kind smallint NOT NULL DEFAULT 0;
