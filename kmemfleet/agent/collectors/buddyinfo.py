"""/proc/buddyinfo: free blocks per order, per zone and NUMA node.

Rows `Node %d, zone %8s` followed by one `%6lu` per order (MAX_ORDER of them).
"""

from __future__ import annotations

from kmemfleet import limits
from kmemfleet.agent.collectors.base import Parsed
from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

PATH = "/proc/buddyinfo"


def parse(text: str, path: str = PATH) -> Parsed[pb.BuddyZone]:
    result: Parsed[pb.BuddyZone] = Parsed()
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if (
            len(tokens) < 5
            or tokens[0] != "Node"
            or not tokens[1].endswith(",")
            or tokens[2] != "zone"
        ):
            result.skip(path, lineno, "expected 'Node N, zone NAME counts...'")
            continue
        node, counts = tokens[1][:-1], tokens[4:]
        if not (node.isascii() and node.isdigit() and len(node) < 9) or not all(
            c.isascii() and c.isdigit() and len(c) < 19 for c in counts
        ):
            result.skip(path, lineno, "node or free block count is not a number")
            continue
        zone = pb.BuddyZone(node=int(node), zone=tokens[3], free_blocks=[int(c) for c in counts])
        problem = limits.buddy_problem(zone)
        if problem is None and len(result.items) >= limits.MAX_BUDDY_ZONES:
            problem = f"more than {limits.MAX_BUDDY_ZONES} zones"
        if problem is not None:
            result.skip(path, lineno, problem)
            continue
        result.items.append(zone)
    if not result.items and result.skipped:
        raise SourceError(path, "no 'Node N, zone NAME' rows: not a buddyinfo file", line=1)
    return result
