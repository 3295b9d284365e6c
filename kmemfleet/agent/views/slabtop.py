"""The slabtop/showslab view of slabinfo rows, computed exactly as procps slabtop does.

Summary (procps proc/slab.c): objects, slabs and sizes summed over every row;
a cache is "active" when num_objs > 0; size = Σ objs·objsize; the average
object size is an integer division of total size by Σ num_objs, as in C.
Row: `"%6u %6u %3u%% %7.2fK %6u %8u %9luK %-23s"`, cache size =
num_slabs · pagesperslab · page size, USE = 100·active/num (integer).
Sort keys are showslab's; numeric keys sort descending, the name ascending.

What "slab bytes" means, defined here once (the three differ on purpose):
- total_bytes: num_objs·objsize, the objects a cache holds, used or free; the
  summary's Total Size and `kmemfleet slabs`' TOTAL and slab memory.
- active_bytes: active_objs·objsize, the objects in use; the summary's Active
  Size, and the series the server's leak analysis judges (there computed in SQL).
- cache_size: num_slabs·pagesperslab·page size, the pages behind the cache,
  slab overhead included; slabtop's CACHE SIZE column (and sort key c).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kmemfleet.v1 import snapshot_pb2 as pb

SORT_KEYS: dict[str, tuple[str, Callable[[pb.SlabCache, int], object]]] = {
    "a": ("active objects", lambda c, p: c.active_objs),
    "c": ("cache size", lambda c, p: cache_size(c, p)),
    "l": ("slabs", lambda c, p: c.num_slabs),
    "n": ("name", lambda c, p: c.name),
    "o": ("objects", lambda c, p: c.num_objs),
    "p": ("objects per slab", lambda c, p: c.objperslab),
    "s": ("object size", lambda c, p: c.objsize),
    "u": ("utilization", lambda c, p: use_pct(c)),
}
DEFAULT_SORT = "o"
HEADER = "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME"
HEADER_DELTA = "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE    DELTA NAME"


def total_bytes(c: pb.SlabCache) -> int:
    return c.num_objs * c.objsize


def active_bytes(c: pb.SlabCache) -> int:
    return c.active_objs * c.objsize


def cache_size(c: pb.SlabCache, page_size: int) -> int:
    return c.num_slabs * c.pagesperslab * page_size


def use_pct(c: pb.SlabCache) -> int:
    return 100 * c.active_objs // c.num_objs if c.num_objs else 0


@dataclass(frozen=True)
class SlabSummary:
    """slabtop's header: totals over every cache (the server's ranking has its own Summary)."""

    active_objs: int
    total_objs: int
    active_slabs: int
    total_slabs: int
    active_caches: int
    total_caches: int
    active_size: int
    total_size: int
    min_obj_size: int
    avg_obj_size: int
    max_obj_size: int


def _pct(a: int, b: int) -> float:
    return 100.0 * a / b if b else 0.0


def summarize(caches: Sequence[pb.SlabCache]) -> SlabSummary:
    total_objs = sum(c.num_objs for c in caches)
    total_size = sum(map(total_bytes, caches))
    return SlabSummary(
        active_objs=sum(c.active_objs for c in caches),
        total_objs=total_objs,
        active_slabs=sum(c.active_slabs for c in caches),
        total_slabs=sum(c.num_slabs for c in caches),
        active_caches=sum(1 for c in caches if c.num_objs > 0),
        total_caches=len(caches),
        active_size=sum(map(active_bytes, caches)),
        total_size=total_size,
        min_obj_size=min((c.objsize for c in caches), default=0),
        avg_obj_size=total_size // total_objs if total_objs else 0,
        max_obj_size=max((c.objsize for c in caches), default=0),
    )


def summary_lines(s: SlabSummary) -> list[str]:
    return [
        f" Active / Total Objects (% used)    : {s.active_objs} / {s.total_objs} "
        f"({_pct(s.active_objs, s.total_objs):.1f}%)",
        f" Active / Total Slabs (% used)      : {s.active_slabs} / {s.total_slabs} "
        f"({_pct(s.active_slabs, s.total_slabs):.1f}%)",
        f" Active / Total Caches (% used)     : {s.active_caches} / {s.total_caches} "
        f"({_pct(s.active_caches, s.total_caches):.1f}%)",
        f" Active / Total Size (% used)       : {s.active_size / 1024:.2f}K / "
        f"{s.total_size / 1024:.2f}K ({_pct(s.active_size, s.total_size):.1f}%)",
        f" Minimum / Average / Maximum Object : {s.min_obj_size / 1024:.2f}K / "
        f"{s.avg_obj_size / 1024:.2f}K / {s.max_obj_size / 1024:.2f}K",
    ]


def sort_caches(caches: Sequence[pb.SlabCache], key: str, page_size: int) -> list[pb.SlabCache]:
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r} (one of {' '.join(SORT_KEYS)})")
    fn = SORT_KEYS[key][1]
    return sorted(caches, key=lambda c: fn(c, page_size), reverse=key != "n")  # type: ignore[arg-type,return-value]


def row_line(c: pb.SlabCache, page_size: int, delta: int | None = None) -> str:
    text = (
        f"{c.num_objs:6d} {c.active_objs:6d} {use_pct(c):3d}% {c.objsize / 1024:7.2f}K "
        f"{c.num_slabs:6d} {c.objperslab:8d} {cache_size(c, page_size) // 1024:9d}K "
    )
    if delta is not None:
        text += f"{delta:+8d} "
    return text + f"{c.name:<23s}"


def key_of(c: pb.SlabCache) -> tuple[str, int]:
    return (c.name, c.occurrence)


def to_json(
    caches: Sequence[pb.SlabCache],
    page_size: int,
    sort: str,
    baseline: dict[tuple[str, int], pb.SlabCache] | None = None,
) -> dict[str, object]:
    s = summarize(caches)
    rows = []
    for c in sort_caches(caches, sort, page_size):
        base = (baseline or {}).get(key_of(c))
        rows.append(
            {
                "name": c.name,
                "occurrence": c.occurrence,
                "objs": c.num_objs,
                "active": c.active_objs,
                "use_pct": use_pct(c),
                "obj_size": c.objsize,
                "slabs": c.num_slabs,
                "active_slabs": c.active_slabs,
                "obj_per_slab": c.objperslab,
                "pages_per_slab": c.pagesperslab,
                "cache_size_bytes": cache_size(c, page_size),
                "delta_active_objs": c.active_objs - base.active_objs if base else 0,
                "delta_cache_size_bytes": cache_size(c, page_size) - cache_size(base, page_size)
                if base
                else 0,
            }
        )
    return {
        "summary": {
            "active_objs": s.active_objs,
            "total_objs": s.total_objs,
            "objs_used_pct": round(_pct(s.active_objs, s.total_objs), 1),
            "active_slabs": s.active_slabs,
            "total_slabs": s.total_slabs,
            "slabs_used_pct": round(_pct(s.active_slabs, s.total_slabs), 1),
            "active_caches": s.active_caches,
            "total_caches": s.total_caches,
            "caches_used_pct": round(_pct(s.active_caches, s.total_caches), 1),
            "active_size_bytes": s.active_size,
            "total_size_bytes": s.total_size,
            "size_used_pct": round(_pct(s.active_size, s.total_size), 1),
            "min_obj_size": s.min_obj_size,
            "avg_obj_size": s.avg_obj_size,
            "max_obj_size": s.max_obj_size,
        },
        "caches": rows,
    }
