"""What one snapshot may carry: the limits shared by the agent and the server.

A small pure helper (no gRPC, no asyncpg) so the agent's parsers and the
server's validation apply the very same numbers. A *row* outside them (a slab
cache, a meminfo key, a buddy zone, a stack definition and its samples) is
dropped and reported as a ParseIssue: `sanitize()` does that on a Snapshot,
the agent before it encodes, the server for a sender that did not. Only the
snapshot's own identity and framing (device, seq, time) reject a snapshot.

Derived values are ranges too: a slab cache's bytes (active_objs * objsize,
num_objs * objsize) must fit a signed 64-bit integer, since analysis stores them
as PostgreSQL bigint.

Issue reasons name the field and its index, never the offending value: a value
may be anything the device's files held.
"""

from __future__ import annotations

from collections.abc import Callable, Container

from kmemfleet.v1 import snapshot_pb2 as pb
from kmemfleet.wire import SLAB, STACK, to_signed64

# Seqs at or above this belong to `kmemfleet import` (IMPORT_SEQ_BASE + capture
# time in ms): a bundle of a boot whose agent also streams never takes a seq the
# agent will use, nor moves the boot's newest live seq (the server's fast path).
IMPORT_SEQ_BASE = 1 << 62
MAX_ID_LEN = 128  # device, boot, firmware ids, cache names, meminfo keys, modules
MAX_TEXT_LEN = 256
MAX_LABELS = 32
MAX_SLAB_CACHES = 10_000
MAX_STACK_SAMPLES = 200_000
MAX_STACK_DEFINITIONS = 200_000
MAX_FRAMES = 64
MAX_FRAME_TEXT = 256
MAX_MEMINFO_KEYS = 512
MAX_BUDDY_ZONES = 256
MAX_BUDDY_ORDERS = 64
MAX_PARSE_ISSUES = 1_000
MAX_ISSUE_REASON = 200
MAX_COUNT = (1 << 63) - 1  # PostgreSQL bigint
# StackDefinition.kind (MemoryKind; an open enum on the wire, a smallint in the
# stacks table): known kinds are 0..3; later ones a newer agent may send are kept
# up to this bound (named kind<n>), anything else drops the definition.
MAX_MEMORY_KIND = 255


def text_problem(value: str, limit: int = MAX_TEXT_LEN, required: bool = False) -> str | None:
    """Why a string is out of limits, or None."""
    if required and not value.strip():
        return "is required"
    if len(value) > limit:
        return f"longer than {limit} characters"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def count_problem(value: int) -> str | None:
    if value < 0:
        return "must be >= 0"
    if value > MAX_COUNT:
        return "must be < 2^63"
    return None


def slab_problem(c: pb.SlabCache) -> str | None:
    """Why a slab cache row is out of limits ("field: reason"), or None."""
    name = c.name
    if name.strip() and len(name) <= MAX_ID_LEN and "\x00" not in name:
        lo = min(SLAB.count_values(c))
        if lo >= 0 and max(c.active_objs, c.num_objs) * c.objsize <= MAX_COUNT:
            return None  # the fast path: one comparison chain per row
    problem = text_problem(name, MAX_ID_LEN, required=True)
    if problem:
        return f"name: {problem}"
    for f in SLAB.counts:
        problem = count_problem(getattr(c, f))
        if problem:
            return f"{f}: {problem}"
    return "num_objs * objsize: bytes must be < 2^63"


def meminfo_problem(key: str, value: int) -> str | None:
    problem = text_problem(key, MAX_ID_LEN, required=True)
    if problem:
        return f"key {problem}"
    return count_problem(value)


def buddy_problem(z: pb.BuddyZone) -> str | None:
    problem = text_problem(z.zone, MAX_ID_LEN)
    if problem:
        return f"zone: {problem}"
    if z.node < 0:
        return "node: must be >= 0"
    if len(z.free_blocks) > MAX_BUDDY_ORDERS:
        return f"free_blocks: more than {MAX_BUDDY_ORDERS} orders"
    if z.free_blocks and min(z.free_blocks) < 0:
        return "free_blocks: must be >= 0"
    return None


def frames_problem(frames: list[tuple[str, str, str]], module: str = "") -> str | None:
    """(function, module, file) per frame; why the stack is out of limits, or None."""
    if len(frames) > MAX_FRAMES:
        return f"frames: more than {MAX_FRAMES}"
    problem = text_problem(module, MAX_ID_LEN)
    if problem:
        return f"module: {problem}"
    for j, (fn, mod, file) in enumerate(frames):
        for what, value, limit in (
            ("function", fn, MAX_FRAME_TEXT),
            ("module", mod, MAX_ID_LEN),
            ("file", file, MAX_FRAME_TEXT),
        ):
            problem = text_problem(value, limit)
            if problem:
                return f"frames[{j}].{what}: {problem}"
    return None


def definition_problem(sd: pb.StackDefinition) -> str | None:
    if not 0 <= sd.kind <= MAX_MEMORY_KIND:
        return f"kind: must be 0..{MAX_MEMORY_KIND}"
    frames = sd.frames
    if not frames:
        return "frames: must not be empty"
    problem = frames_problem([(f.function, f.module, f.file) for f in frames], sd.module)
    if problem:
        return problem
    for j, f in enumerate(frames):
        if not f.function and not f.address:
            return f"frames[{j}]: needs a function or an address"
    return None


def sample_problem(s: pb.StackSample) -> str | None:
    for f in STACK.counts:
        if getattr(s, f) < 0:
            return f"{f}: must be >= 0"
    return None


def clamp_text(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, NUL replaced: for texts a row may shorten."""
    if len(value) > limit or "\x00" in value:
        return value[:limit].replace("\x00", "?")
    return value


def clamp_frame(f: pb.Frame) -> pb.Frame:
    if (
        len(f.function) > MAX_FRAME_TEXT
        or len(f.module) > MAX_ID_LEN
        or len(f.file) > MAX_FRAME_TEXT
        or "\x00" in f.function + f.module + f.file
    ):
        f.function = clamp_text(f.function, MAX_FRAME_TEXT)
        f.module = clamp_text(f.module, MAX_ID_LEN)
        f.file = clamp_text(f.file, MAX_FRAME_TEXT)
    return f


def described(text: str) -> str:
    """What a malformed line looks like without echoing it (see the module
    docstring): its length and the kinds of characters it starts with."""
    text = text.strip()
    if not text:
        return "an empty line"
    head = text.split(None, 1)[0]
    kind = (
        "a number"
        if head.lstrip("-").isdigit()
        else "a word"
        if head.replace("_", "").replace(".", "").isalnum()
        else "punctuation"
    )
    return f"a line of {len(text)} characters starting with {kind}"


def issue(file: str, reason: str, line: int = 0) -> pb.ParseIssue:
    return pb.ParseIssue(file=file[:MAX_TEXT_LEN], line=line, reason=reason[:MAX_ISSUE_REASON])


def sanitize(
    snap: pb.Snapshot,
    file: str = "snapshot",
    known_stacks: Container[int] = (),
    samples: bool = True,
) -> int:
    """Drop every row of `snap` outside the limits, reporting each as a ParseIssue.

    Returns how many rows went. `known_stacks` (a container of signed ids whose
    definitions the receiver already holds) skips checking those definitions.
    Cheap when nothing is wrong: one pass of comparisons per table.
    `samples=False` leaves the per-sample counts to a caller that checks them
    column-wise (the server's writer).
    """
    issues: list[pb.ParseIssue] = []
    dropped = 0

    def report(reason: str) -> None:
        nonlocal dropped
        dropped += 1
        if len(issues) < 50:
            issues.append(issue(file, reason + "; row dropped"))

    caches = snap.slab_caches
    if len(caches) > MAX_SLAB_CACHES:
        report(f"slab_caches: more than {MAX_SLAB_CACHES} ({len(caches) - MAX_SLAB_CACHES} over)")
        dropped += len(caches) - MAX_SLAB_CACHES - 1
        del caches[MAX_SLAB_CACHES:]
    bad = [i for i, c in enumerate(caches) if slab_problem(c)]
    for i in reversed(bad):
        report(f"slab_caches[{i}].{slab_problem(caches[i])}")
        del caches[i]
    removed = snap.removed_slab_caches
    bad = [i for i, k in enumerate(removed) if text_problem(k.name, MAX_ID_LEN, required=True)]
    for i in reversed(bad):
        report(f"removed_slab_caches[{i}].name: out of limits")
        del removed[i]

    mem = snap.meminfo
    for key in [k for k, v in mem.items() if meminfo_problem(k, v)]:
        report(f"meminfo key #{list(mem).index(key)}: {meminfo_problem(key, mem[key])}")
        del mem[key]
    if len(mem) > MAX_MEMINFO_KEYS:
        for key in list(mem)[MAX_MEMINFO_KEYS:]:
            del mem[key]
        report(f"meminfo: more than {MAX_MEMINFO_KEYS} keys")

    zones = snap.buddyinfo
    bad = [i for i, z in enumerate(zones) if buddy_problem(z)]
    for i in reversed(bad):
        report(f"buddyinfo[{i}].{buddy_problem(zones[i])}")
        del zones[i]
    if len(zones) > MAX_BUDDY_ZONES:
        report(f"buddyinfo: more than {MAX_BUDDY_ZONES} zones")
        del zones[MAX_BUDDY_ZONES:]

    _sanitize_stacks(snap, known_stacks, report, samples)

    if issues:
        room = MAX_PARSE_ISSUES - len(snap.parse_issues)
        snap.parse_issues.extend(issues[: max(0, room)])
    if len(snap.parse_issues) > MAX_PARSE_ISSUES:
        del snap.parse_issues[MAX_PARSE_ISSUES:]
    for pi in snap.parse_issues:
        if len(pi.file) > MAX_TEXT_LEN or "\x00" in pi.file:
            pi.file = pi.file[:MAX_TEXT_LEN].replace("\x00", "?")
        if len(pi.reason) > 1024 or "\x00" in pi.reason:
            pi.reason = pi.reason[:1024].replace("\x00", "?")
    return dropped


def _sanitize_stacks(
    snap: pb.Snapshot, known_ids: Container[int], rep: Callable[[str], None], check_samples: bool
) -> None:
    defs = snap.stack_definitions
    gone: set[int] = set()
    bad: list[tuple[int, str]] = []
    for i, sd in enumerate(defs):
        if to_signed64(sd.stack_id) in known_ids:
            continue
        frames = sd.frames
        if (
            frames
            and 0 <= sd.kind <= MAX_MEMORY_KIND
            and len(frames) <= MAX_FRAMES
            and len(sd.module) <= MAX_ID_LEN
            and "\x00" not in sd.module
            and all(
                len(f.function) <= MAX_FRAME_TEXT
                and len(f.module) <= MAX_ID_LEN
                and len(f.file) <= MAX_FRAME_TEXT
                and "\x00" not in f.function
                and "\x00" not in f.module
                and "\x00" not in f.file
                and (f.function or f.address)
                for f in frames
            )
        ):
            continue
        bad.append((i, definition_problem(sd) or "out of limits"))
    for i, why in reversed(bad):
        gone.add(defs[i].stack_id)
        rep(f"stack_definitions[{i}].{why} (its samples dropped too)")
        del defs[i]
    if len(defs) > MAX_STACK_DEFINITIONS:
        rep(f"stack_definitions: more than {MAX_STACK_DEFINITIONS}")
        gone.update(d.stack_id for d in defs[MAX_STACK_DEFINITIONS:])
        del defs[MAX_STACK_DEFINITIONS:]
    samples = snap.stack_samples
    if len(samples) > MAX_STACK_SAMPLES:
        rep(f"stack_samples: more than {MAX_STACK_SAMPLES}")
        del samples[MAX_STACK_SAMPLES:]
    if not samples:
        return
    negative = check_samples and (min(min(c) for c in map(STACK.count_values, samples)) < 0)
    if not gone and not negative:
        return
    drop = []
    for i, s in enumerate(samples):
        problem = sample_problem(s) if negative else None
        if problem:
            rep(f"stack_samples[{i}].{problem}")
        if problem or s.stack_id in gone:
            drop.append(i)
    for i in reversed(drop):
        del samples[i]
