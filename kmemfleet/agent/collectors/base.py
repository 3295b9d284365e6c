"""What every collector shares: a movable root, parse issues, and the result type.

Parsers are pure functions from text to rows. A row a parser cannot trust is
skipped and reported as a ParseIssue; a file it cannot understand at all (wrong
header, unknown version) raises SourceError naming the file and line. Which
sources exist and how they are read is kmemfleet.agent.sources' job.

Rows are protobuf messages (kmemfleet.v1) for the small fixed tables (slabinfo,
buddyinfo, parse issues) and plain rows (StackRow, stackreport.py) for stacks,
as measured: plain slab rows converted to messages later would cost +0.35 to
0.5 ms per snapshot for 235 caches, while all 5,000 stacks of a device as
messages cost +134 ms (samples and definitions; 22 ms to parse them as rows)
when the delta encoder needs only the few dozen that changed.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from kmemfleet.errors import SourceError
from kmemfleet.v1 import snapshot_pb2 as pb

T = TypeVar("T")

# Rows reported per file at most: a file of garbage must not make a huge snapshot.
MAX_ISSUES_PER_FILE = 50


@dataclass
class Parsed(Generic[T]):
    """Rows a parser trusted, the ones it skipped, and header facts."""

    items: list[T] = field(default_factory=list)
    issues: list[pb.ParseIssue] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    skipped: int = 0

    def skip(self, path: str, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.issues) < MAX_ISSUES_PER_FILE:
            self.issues.append(pb.ParseIssue(file=path, line=line, reason=reason[:200]))


DEBUGFS = "/sys/kernel/debug"  # where the kernel's debugfs is normally mounted


@dataclass(frozen=True)
class KernelFS:
    """Where the kernel files are: a root (normally /) and a debugfs mount.

    Tests and chroots move the root; every collector reads through this.
    """

    root: Path = Path("/")
    debugfs: Path | None = None

    def proc(self, name: str) -> Path:
        return self.root / "proc" / name

    def path(self, kernel_path: str) -> Path:
        """Where a kernel path ("/proc/slabinfo", "/sys/kernel/debug/mlt/stacks") is."""
        if self.debugfs is not None and kernel_path.startswith(DEBUGFS + "/"):
            return self.debugfs / kernel_path[len(DEBUGFS) + 1 :]
        return self.root / kernel_path.lstrip("/")


# Bounds of one source read (issue 18): a kernel text file of the sources we read
# is kilobytes to a few megabytes; anything beyond is not one, and a snapshot
# made of it could not be sent anyway (the server's default limit is 16 MiB).
MAX_SOURCE_BYTES = 16 * 1024 * 1024
MAX_READ_SECONDS = 10.0
_CHUNK = 1 << 20


def read_text(
    path: Path,
    shown: str | None = None,
    max_bytes: int = MAX_SOURCE_BYTES,
    max_seconds: float = MAX_READ_SECONDS,
    follow_symlinks: bool = True,
) -> str:
    """Read a kernel text file, bounded; explain problems plainly.

    Only a regular file is read (procfs, debugfs and sysfs files are): a FIFO,
    device or directory in its place is refused without blocking (the open is
    non-blocking). At most `max_bytes` and `max_seconds`; beyond either the read
    stops with a SourceError. `follow_symlinks=False` refuses a symbolic link
    (bundle import: a capture folder is untrusted)."""
    name = shown or str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise SourceError(
            name,
            "permission denied: it is readable by root only (mode 0400); run the agent "
            "as root or with CAP_DAC_READ_SEARCH",
        ) from None
    except FileNotFoundError:
        raise SourceError(name, "not found: this kernel does not provide it") from None
    except OSError as exc:
        if not follow_symlinks and path.is_symlink():
            raise SourceError(name, "a symbolic link: not read") from None
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError(name, "not a regular file (a FIFO, device or directory): not read")
        chunks: list[bytes] = []
        total = 0
        deadline = time.monotonic() + max_seconds
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:  # only a non-regular file blocks; refused above
                break
            except OSError as exc:
                raise SourceError(name, f"cannot read: {exc.strerror or exc}") from None
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise SourceError(name, f"larger than {max_bytes} bytes: not read")
            if time.monotonic() > deadline:
                raise SourceError(name, f"reading took longer than {max_seconds:g} s: not read")
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def parse_int(token: str) -> int:
    """A decimal integer as the kernel prints it; ValueError otherwise."""
    digits = token[1:] if token[:1] == "-" else token
    # isascii: str.isdigit() also accepts other scripts' digits, which int() would take.
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise ValueError("not an integer")  # the token itself is not echoed
    return int(token)
