"""The wire messages as table rows and JSON: one field table per message, from the descriptors.

Validation, the COPY column lists, the query mapping and the JSON columns all read
their field lists here, and those come from the protobuf descriptors: a field added
to proto/ reaches each of them without another edit (its table still needs a
migration). Stack ids are fixed64 on the wire and bigint (two's complement) in
PostgreSQL; both conversions live here too. A pure helper: protobuf only.
"""

from __future__ import annotations

import functools
import json
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, Generic, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kmemfleet.v1 import snapshot_pb2 as pb

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

ROW_KEY = ("device_id", "boot_id", "seq", "captured_at")  # the snapshot a sample row is of
Row = tuple[object, ...]
_U64 = 1 << 64


def to_signed64(value: int) -> int:
    """A fixed64 wire id as PostgreSQL bigint (two's complement)."""
    return value - _U64 if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    return value & (_U64 - 1)


def signed64_column(values: Sequence[int]) -> list[int]:
    """to_signed64 of a whole column, reinterpreted in C (the ingest hot path)."""
    return array("q", array("Q", values).tobytes()).tolist()


class FieldTable:
    """A repeated message stored one row per element (slab_samples, stack_samples).

    Scalar fields only (SlabCache.statistics is not stored). Key fields are those
    that are not int64 counts (name, occurrence; stack_id); columns are ROW_KEY, the
    key fields, `removed` (a tombstone: the key left the snapshot), then the counts,
    in descriptor order. fixed64 keys are stored signed.
    `renamed` maps a field to its column where SQL takes the name (limit -> lim).
    """

    def __init__(self, message: type[Message], renamed: Mapping[str, str] | None = None) -> None:
        self.message = message
        fields = [f for f in message.DESCRIPTOR.fields if f.message_type is None]
        self.key = tuple(f.name for f in fields if f.type != FieldDescriptor.TYPE_INT64)
        self.counts = tuple(f.name for f in fields if f.type == FieldDescriptor.TYPE_INT64)
        self._fixed64 = {f.name for f in fields if f.type == FieldDescriptor.TYPE_FIXED64}
        self._columns = {f: (renamed or {}).get(f, f) for f in (*self.key, *self.counts)}
        self.columns = (
            *ROW_KEY,
            *(self._columns[f] for f in self.key),
            "removed",
            *(self._columns[f] for f in self.counts),
        )
        # One C-level getattr pass per element, key fields first.
        self.values = attrgetter(*self.key, *self.counts)
        self.count_values = attrgetter(*self.counts)
        self._zeros = (0,) * len(self.counts)
        # The rows of a snapshot's elements as a list comprehension generated from
        # the descriptor's field names: plain attribute reads in one tuple display,
        # as fast as rows written out by hand (columns and back cost a quarter more).
        if not self._fixed64:
            names = ", ".join(f"e.{f}" for f in self.key)
            counts = ", ".join(f"e.{f}" for f in self.counts)
            # eval of field names from our own protobuf descriptor, never input.
            self._element_rows = eval(
                f"lambda d, b, s, t, es: [(d, b, s, t, {names}, False, {counts}) for e in es]"
            )

    def value_columns(self, elements: Sequence[Message]) -> list[Sequence[Any]]:
        """One column per field (key first), fixed64 keys as signed bigint."""
        cols: list[Sequence[Any]] = list(zip(*map(self.values, elements), strict=True))
        for i, name in enumerate(self.key):
            if name in self._fixed64:
                cols[i] = signed64_column(cols[i])
        return cols

    def element_rows(self, head: Row, elements: Sequence[Message]) -> list[Row]:
        """COPY rows straight from the elements: for a table without fixed64 keys
        (slab caches), one tuple per element is cheaper than columns and back."""
        rows: list[Row] = self._element_rows(*head, elements)
        return rows

    def rows(self, head: Row, columns: Sequence[Sequence[Any]]) -> list[Row]:
        """COPY rows (in `columns` order) of one snapshot from value_columns()."""
        if not columns:
            return []
        n, k = len(columns[0]), len(self.key)
        return list(
            zip(
                *(repeat(v, n) for v in head),
                *columns[:k],
                repeat(False, n),
                *columns[k:],
                strict=True,
            )
        )

    def tombstone(self, head: Row, *key: object) -> Row:
        return (*head, *key, True, *self._zeros)

    def from_row(self, row: Mapping[str, Any]) -> Any:
        """The message back from a stored row (a mapping of column -> value)."""
        return self.message(
            **{
                f: to_unsigned64(row[c]) if f in self._fixed64 else row[c]
                for f, c in self._columns.items()
            }
        )


SLAB = FieldTable(pb.SlabCache, renamed={"limit": "lim"})  # LIMIT is an SQL keyword
STACK = FieldTable(pb.StackSample)


@functools.cache
def _plan(desc: Descriptor) -> tuple[tuple[str, str], ...]:
    """(field, kind) per field: how as_dict() turns each into JSON."""
    plan = []
    for f in desc.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            kind = "map"
        elif f.message_type is not None:
            kind = "messages" if f.is_repeated else "message"
        else:
            kind = "list" if f.is_repeated else "scalar"
        plan.append((f.name, kind))
    return tuple(plan)


def as_dict(msg: Message) -> dict[str, Any]:
    """Every field of `msg` (defaults too) under its proto name: the JSON we store.
    `Message(**as_dict(msg))` gives `msg` back."""
    out: dict[str, Any] = {}
    for name, kind in _plan(msg.DESCRIPTOR):
        v = getattr(msg, name)
        if kind == "map":
            v = dict(v)
        elif kind == "list":
            v = list(v)
        elif kind == "message":
            v = as_dict(v)
        elif kind == "messages":
            v = [as_dict(m) for m in v]
        out[name] = v
    return out


def dumps(messages: Iterable[Message]) -> str:
    """A JSON array of as_dict() of each message (frames, buddy zones, parse issues)."""
    return json.dumps([as_dict(m) for m in messages])


def loads(value: Any) -> Any:
    """A stored JSON column: asyncpg hands jsonb over as text unless a codec is set."""
    return json.loads(value) if isinstance(value, str) else value


_FRAME_FIELDS = frozenset(pb.Frame.DESCRIPTOR.fields_by_name)


def stack_definition(row: Mapping[str, Any]) -> pb.StackDefinition:
    """A `stacks` row (stack_id, source, module, frames[, kind]) as the wire message."""
    return pb.StackDefinition(
        stack_id=to_unsigned64(row["stack_id"]),
        module=row["module"],
        source=row["source"],
        kind=int(row.get("kind") or 0),  # type: ignore[arg-type]  # no column: slab
        # Keys a Frame no longer has (rows stored by another release) are skipped.
        frames=[
            pb.Frame(**{k: v for k, v in f.items() if k in _FRAME_FIELDS})
            for f in loads(row["frames"])
        ],
    )


class LruCache(Generic[K, V]):
    """At most `limit` values, the least recently used one dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key` (now the most recently used), else make()'s, kept."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        found = self._items[key] = make()
        if len(self._items) > self.limit:
            self._items.popitem(last=False)
        return found

    def clear(self) -> None:
        self._items.clear()


# A device's state lists at most a few hundred stacks, so this keeps a few device
# pages' worth. About 6 KB each (a 16-frame upb definition), ~24 MB when full:
# docs/web.md, "Per-process caches".
MAX_KNOWN_DEFINITIONS = 4096
known_definitions: LruCache[tuple[int, int], pb.StackDefinition] = LruCache(MAX_KNOWN_DEFINITIONS)


def known_stack_definition(row: Mapping[str, Any]) -> pb.StackDefinition:
    """stack_definition(row), parsed once per stack id and kind: a stack's frames,
    module and source never change once interned (only a kind of 0 is filled in
    later, hence the kind in the key), so the definition kept is always the stored
    one. A device's state lists hundreds of stacks: parsing their frames was most
    of its time. Callers copy it (CopyFrom, or a field of a new message), never
    change it. The MAX_KNOWN_DEFINITIONS most recently used are kept."""
    key = (int(row["stack_id"]), int(row.get("kind") or 0))
    return known_definitions.get(key, lambda: stack_definition(row))
