"""Property tests: generated reports round-trip; no input makes a parser crash."""
# ruff: noqa: UP031  (printf-style on purpose: the kernel's own C format strings)

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmemfleet.agent.collectors import (
    allocinfo,
    buddyinfo,
    kmalloc,
    mem_leaks,
    meminfo,
    mlt,
    slabinfo,
    stacks,
)
from kmemfleet.agent.stackid import format_id, stack_id
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb
from tests.agent.helpers import FIXTURES

u32 = st.integers(0, 2**32 - 1)
u63 = st.integers(0, 2**63 - 1)
name = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
    min_size=1,
    max_size=40,
)
symbol = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=24)


def pb_frame_text(draw: Callable[..., object]) -> str:
    func = draw(symbol)
    off, size = draw(st.integers(0, 0xFFFF)), draw(st.integers(1, 0xFFFF))
    mod = draw(st.one_of(st.just(""), symbol))
    return f"{func}+{off:#x}/{size:#x}" + (f" [{mod}]" if mod else "")


frame_text = st.composite(pb_frame_text)()


# objsize below 2^30: num_objs * objsize (bytes) must fit 2^63 (kmemfleet.limits).
@given(st.lists(st.tuples(name, u32, u32, st.integers(0, 2**30), *(u32,) * 8), max_size=30))
def test_slabinfo_round_trip(rows: list[tuple[object, ...]]) -> None:
    text = "slabinfo - version: 2.1\n# name <active_objs> ...\n"
    for r in rows:
        text += "%-17s %6lu %6lu %6u %4u %4d" % r[:6]
        text += " : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu\n" % r[6:]
    parsed = slabinfo.parse(text)
    assert not parsed.issues
    got = [
        (
            c.name,
            c.active_objs,
            c.num_objs,
            c.objsize,
            c.objperslab,
            c.pagesperslab,
            c.limit,
            c.batchcount,
            c.sharedfactor,
            c.active_slabs,
            c.num_slabs,
            c.sharedavail,
        )
        for c in parsed.items
    ]
    assert got == rows
    counts: dict[object, int] = {}
    for c in parsed.items:
        assert c.occurrence == counts.get(c.name, 0)
        counts[c.name] = c.occurrence + 1


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.lists(frame_text, min_size=1, max_size=6), u63, u63, u63, u63),
        max_size=12,
        unique_by=lambda r: tuple(r[0]),
    )
)
def test_mlt_report_round_trip(rows: list[tuple[list[str], int, int, int, int]]) -> None:
    text = (
        "mlt - version: 1.0\n# mode full sample_bytes 65536 depth 16 tracked_objects 0 "
        f"tracked_bytes 0 stacks {len(rows)} dropped 0 untracked_frees 0 missed_frees 0 "
        "uptime_ns 1\n"
    )
    for frames, b, o, a, f in rows:
        text += f"stack {format_id(stack_id(frames))} bytes {b} objects {o} allocs {a} frees {f}\n"
        text += "".join(f" {x}\n" for x in frames) + "\n"
    r = mlt.parse(text)
    assert not r.issues
    assert [(list(x.frames), x.bytes, x.objects, x.allocs, x.frees) for x in r.rows] == rows
    for x in r.rows:
        d = r.definition(x)
        assert [f.function for f in d.frames] == [t.split("+")[0] for t in x.frames]


@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**40),
            st.integers(0, 2**32),
            st.text("abcdefghij/", min_size=1, max_size=20).map(lambda s: s + ".c"),
            st.integers(1, 99999),
            symbol,
            st.one_of(st.just(""), symbol),
        ),
        max_size=20,
        unique_by=lambda r: (r[2], r[3], r[4], r[5]),
    )
)
def test_allocinfo_round_trip(rows: list[tuple[int, int, str, int, str, str]]) -> None:
    text = "allocinfo - version: 1.0\n#     <size>  <calls> <tag info>\n"
    for b, n, file, line, func, mod in rows:
        text += (
            "%12d %8d " % (b, n)
            + f"{file}:{line}"
            + (f" [{mod}]" if mod else "")
            + f" func:{func}\n"
        )
    r = allocinfo.parse(text)
    assert [(x.bytes, x.objects) for x in r.rows] == [(b, n) for b, n, *_ in rows]
    for x, (_, _, file, line, func, mod) in zip(r.rows, rows, strict=True):
        f = r.definition(x).frames[0]
        assert (f.file, f.line, f.function, f.module) == (file, line, func, mod)


def _legacy_size(value: int) -> str:
    # Exactly as Brocade MLT / kmod mlt_render_legacy prints a size.
    if value >> 20 > 1:
        return "%6d.%1d MB" % (value >> 20, int(str(value & ((1 << 20) - 1))[0]))
    if value >> 10 > 1:
        return "%6d.%1d KB" % (value >> 10, int(str(value & 1023)[0]))
    return "%6d B" % value


@given(
    st.lists(
        st.tuples(frame_text, st.integers(0, 2**40), st.integers(0, 2**31 - 1)),
        min_size=1,
        max_size=20,
        unique_by=lambda r: r[0],
    )
)
def test_mem_leaks_round_trip_keeps_the_true_size_within_its_range(
    rows: list[tuple[str, int, int]],
) -> None:
    text = "\r\nOutstanding kmalloc allocations tracked by MLT: 1 \r\n"
    text += "Outstanding kmalloc memory tracked by MLT:      1 B \r\n\n"
    text += (
        "Display Index   Stack Trace making the allocations                  "
        "Total Memory allocated (Alloc Count)\r\n"
    )
    for i, (frame, value, count) in enumerate(rows):
        text += "%13d   %-60s  %s  (%d)\n" % (i + 1, frame, _legacy_size(value), count)
    r = mem_leaks.parse(text)
    assert not r.issues
    for x, (frame, value, count) in zip(r.rows, rows, strict=True):
        assert x.frames == (frame,) and x.objects == count
        assert x.bytes <= value <= (x.bytes_upper or x.bytes)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**31 - 1),
            st.integers(0, 2**31 - 1),
            st.integers(1, 2**31 - 1),
            st.integers(0, 99999),
            st.integers(0, 99999),
            symbol,
            st.integers(0, 2**32),
        ),
        max_size=20,
        unique_by=lambda r: (r[5], r[6]),
    )
)
def test_kmalloc_round_trip(rows: list[tuple[int, int, int, int, int, str, int]]) -> None:
    text = "total bytes allocated: %8d\n" % 1 + "   total    slack      net alloc/free  caller\n"
    for r in rows:
        text += "%8d %8d %8d %5d/%-5d %s+0x%x\n" % r
    parsed = kmalloc.parse(text)
    assert [(x.bytes, x.allocs, x.frees) for x in parsed.rows] == [(r[2], r[3], r[4]) for r in rows]


PARSERS: list[Callable[[str], object]] = [
    slabinfo.parse,
    meminfo.parse,
    buddyinfo.parse,
    mlt.parse,
    allocinfo.parse,
    mem_leaks.parse,
    kmalloc.parse,
    lambda t: stacks.parse_any(t, "x"),
]
SEEDS = [p.read_bytes().decode() for p in sorted(FIXTURES.glob("*/*.txt"))]


def _must_not_crash(text: str) -> None:
    for parse in PARSERS:
        try:
            result = parse(text)
        except SourceError:
            continue
        # Whatever a parser accepted must fit the wire model.
        rows = getattr(result, "rows", None) or getattr(result, "items", [])
        if rows and hasattr(result, "definition"):
            snap = pb.Snapshot(stack_source=result.source_info())  # type: ignore[attr-defined]
            for row in rows:
                snap.stack_definitions.append(result.definition(row))  # type: ignore[attr-defined]
                snap.stack_samples.add(
                    stack_id=row.stack_id,
                    bytes=row.bytes,
                    objects=row.objects,
                    allocs=row.allocs,
                    frees=row.frees,
                    bytes_upper=row.bytes_upper,
                )
            snap.SerializeToString()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_no_text_crashes_any_parser(text: str) -> None:
    _must_not_crash(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_real_reports_never_crash_a_parser(seed: str, data: st.DataObject) -> None:
    lines = seed.split("\n")
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["cut", "dup", "replace", "junk", "digits"]))
        if op == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, max(0, len(lines[i]))))]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = data.draw(st.text(max_size=80))
        elif op == "junk":
            lines.insert(i, data.draw(st.text(max_size=40)))
        else:
            lines[i] = lines[i].replace(
                "1",
                data.draw(st.sampled_from(["99999999999999999999999", "-1", "\u0663", "x", ""])),
            )
    _must_not_crash("\n".join(lines))
