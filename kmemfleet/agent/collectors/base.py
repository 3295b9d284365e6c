"""What every collector shares: a movable root, parse issues, and the result type.

Parsers are pure functions from text to wire messages (kmemfleet.v1). A row a
parser cannot trust is skipped and reported as a ParseIssue; a file it cannot
understand at all (wrong header, unknown version) raises SourceError naming the
file and line.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class KernelFS:
    """Where the kernel files are: a root (normally /) and a debugfs mount.

    Tests and chroots move the root; every collector reads through this.
    """

    root: Path = Path("/")
    debugfs: Path | None = None

    def proc(self, name: str) -> Path:
        return self.root / "proc" / name

    def sys(self, name: str) -> Path:
        return self.root / "sys" / name

    def etc(self, name: str) -> Path:
        return self.root / "etc" / name

    def debug(self, name: str) -> Path:
        base = self.debugfs if self.debugfs is not None else self.root / "sys/kernel/debug"
        return base / name


def read_text(path: Path, shown: str | None = None) -> str:
    """Read a kernel text file; explain permission problems plainly."""
    name = shown or str(path)
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except PermissionError:
        raise SourceError(
            name,
            "permission denied: it is readable by root only (mode 0400); run the agent "
            "as root or with CAP_DAC_READ_SEARCH",
        ) from None
    except FileNotFoundError:
        raise SourceError(name, "not found: this kernel does not provide it") from None
    except OSError as exc:
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from None


def parse_int(token: str) -> int:
    """A decimal integer as the kernel prints it; ValueError otherwise."""
    digits = token[1:] if token[:1] == "-" else token
    # isascii: str.isdigit() also accepts other scripts' digits, which int() would take.
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise ValueError(f"not an integer: {token[:40]!r}")
    return int(token)
