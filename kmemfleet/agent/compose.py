"""Fold one snapshot into the next, so the spool can drop the older without
breaking the delta chain.

compose(older, newer) is a snapshot at `newer`'s seq and time whose content is
what the server would hold after applying both: a keyframe when `older` is
one, else a delta on `older`'s base. Changed keys take the newer value,
removals are kept only where the server may still hold the key, definitions
are kept for every stack the result names, and the drop counts add up.
"""

from __future__ import annotations

from kmemfleet.v1 import snapshot_pb2 as pb


def compose(older: pb.Snapshot, newer: pb.Snapshot) -> pb.Snapshot:
    keyframe = older.base_seq == 0
    slabs = {(c.name, c.occurrence): c for c in older.slab_caches}
    removed_slabs = {(k.name, k.occurrence) for k in older.removed_slab_caches}
    for c in newer.slab_caches:
        slabs[(c.name, c.occurrence)] = c
        removed_slabs.discard((c.name, c.occurrence))
    for k in newer.removed_slab_caches:
        slabs.pop((k.name, k.occurrence), None)
        if not keyframe:
            removed_slabs.add((k.name, k.occurrence))

    samples = {s.stack_id: s for s in older.stack_samples}
    removed_stacks = set(older.removed_stacks)
    for s in newer.stack_samples:
        samples[s.stack_id] = s
        removed_stacks.discard(s.stack_id)
    for sid in newer.removed_stacks:
        samples.pop(sid, None)
        if not keyframe:
            removed_stacks.add(sid)
    definitions = {d.stack_id: d for d in older.stack_definitions}
    definitions.update((d.stack_id, d) for d in newer.stack_definitions)

    out = pb.Snapshot()
    out.CopyFrom(newer)
    out.base_seq = 0 if keyframe else older.base_seq
    out.spool_dropped = older.spool_dropped + newer.spool_dropped
    del out.slab_caches[:]
    out.slab_caches.extend(slabs.values())
    del out.removed_slab_caches[:]
    out.removed_slab_caches.extend(
        pb.SlabCacheKey(name=n, occurrence=o) for n, o in sorted(removed_slabs)
    )
    del out.stack_samples[:]
    out.stack_samples.extend(samples.values())
    del out.removed_stacks[:]
    out.removed_stacks.extend(sorted(removed_stacks))
    del out.stack_definitions[:]
    out.stack_definitions.extend(definitions[sid] for sid in samples if sid in definitions)
    return out
