"""/proc/meminfo: every key, in bytes ("kB" values times 1024; bare counts as printed)."""

from __future__ import annotations

from kmemfleet import limits
from kmemfleet.agent.collectors.base import Parsed, parse_int
from kmemfleet.errors import SourceError

PATH = "/proc/meminfo"
# The keys kernel memory leaks show up in, for views and ranking.
LEAK_KEYS = (
    "MemTotal",
    "MemFree",
    "LowFree",
    "Slab",
    "SUnreclaim",
    "KernelStack",
    "PageTables",
    "VmallocUsed",
)


def parse(text: str, path: str = PATH) -> Parsed[tuple[str, int]]:
    result: Parsed[tuple[str, int]] = Parsed()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not key or " " in key.strip() or not 1 <= len(fields) <= 2:
            result.skip(path, lineno, "expected 'Key: value [kB]'")
            continue
        try:
            value = parse_int(fields[0])
        except ValueError as exc:
            result.skip(path, lineno, str(exc))
            continue
        if len(fields) == 2:
            if fields[1] != "kB":
                result.skip(path, lineno, "unknown unit (not kB)")
                continue
            value *= 1024
        key = key.strip()
        problem = limits.meminfo_problem(key, value)  # e.g. kB * 1024 beyond 2^63
        if problem is None and len(result.items) >= limits.MAX_MEMINFO_KEYS:
            problem = f"more than {limits.MAX_MEMINFO_KEYS} keys"
        if problem is not None:
            result.skip(path, lineno, problem)
            continue
        result.items.append((key, value))
    if not result.items:
        raise SourceError(path, "no 'Key: value' lines: not a meminfo file")
    return result
