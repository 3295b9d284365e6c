"""What a server does with a chain of snapshots: rebuild the full state (test oracle)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kmemfleet.v1 import snapshot_pb2 as pb


@dataclass
class State:
    seq: int = 0
    slabs: dict[tuple[str, int], bytes] = field(default_factory=dict)
    samples: dict[int, tuple[int, int, int, int, int]] = field(default_factory=dict)
    definitions: dict[int, pb.StackDefinition] = field(default_factory=dict)

    def apply(self, snap: pb.Snapshot) -> None:
        if snap.base_seq == 0:
            self.slabs.clear()
            self.samples.clear()
        else:
            assert snap.base_seq == self.seq, f"chain broken: {snap.base_seq} != {self.seq}"
        for d in snap.stack_definitions:
            self.definitions[d.stack_id] = d
        for c in snap.slab_caches:
            self.slabs[(c.name, c.occurrence)] = c.SerializeToString()
        for k in snap.removed_slab_caches:
            del self.slabs[(k.name, k.occurrence)]
        for s in snap.stack_samples:
            assert s.stack_id in self.definitions, "sample names an undefined stack"
            self.samples[s.stack_id] = (s.bytes, s.objects, s.allocs, s.frees, s.bytes_upper)
        for sid in snap.removed_stacks:
            del self.samples[sid]
        self.seq = snap.seq
