"""A synthetic device for tests and the benchmark: a proc tree and an mlt report that drift."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kmemfleet.agent.stackid import format_id, stack_id

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MEMINFO = FIXTURES / "meminfo/linux-6.18-x86_64.txt"
BUDDYINFO = FIXTURES / "buddyinfo/linux-6.18-x86_64.txt"


@dataclass
class SyntheticDevice:
    """`caches` slab caches and `stacks` stacks; step() changes `churn` of them."""

    root: Path
    caches: int = 250
    stacks: int = 5000
    churn: float = 0.02
    seed: int = 1
    vmalloc_areas: int = 0  # > 0: a /proc/vmallocinfo of that many lines, `churn` replaced per step
    device_id: str = "dev-synth-0001"
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    rng: random.Random = field(init=False)
    slab_rows: list[list[int]] = field(init=False)
    stack_rows: list[list[int]] = field(init=False)
    frames: list[list[str]] = field(init=False)
    vm_lines: list[str] = field(init=False)
    vm_next: int = field(init=False, default=0xFFFFC90000000000)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        r = self.rng
        self.slab_rows = []
        for _ in range(self.caches):
            per = r.choice([8, 16, 21, 32, 64, 128])
            slabs = r.randint(1, 3000)
            self.slab_rows.append(
                [
                    r.randint(0, per * slabs),
                    per * slabs,
                    r.choice([8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096]),
                    per,
                    1,
                    slabs,
                ]
            )
        self.frames = []
        self.stack_rows = []
        for i in range(self.stacks):
            depth = r.randint(3, 8)
            mod = r.choice(["", "", "", " [leaky]", " [vendor_eth]"])
            fr = [
                f"site_{i}_{d}+{r.randint(1, 0x400):#x}/{r.randint(0x400, 0x800):#x}"
                + (mod if d == 0 else "")
                for d in range(depth)
            ]
            self.frames.append(fr)
            objs = r.randint(1, 500)
            self.stack_rows.append([objs * r.choice([32, 64, 128, 512]), objs, objs + 10, 10])
        self.vm_lines = [self._vm_line() for _ in range(self.vmalloc_areas)]
        self.write()

    def _vm_line(self) -> str:
        """One area as mm/vmalloc.c s_show prints it (a new address each time)."""
        r = self.rng
        pages = r.choice([1, 1, 2, 4, 8, 16, 64])
        start, size = self.vm_next, (pages + 1) * 4096
        self.vm_next += size + 4096 * r.randint(0, 4)
        kind = r.random()
        if kind < 0.1:
            return (
                f"0x{start:x}-0x{start + size:x} {size:7d} devm_ioremap+0x{r.randint(16, 255):x}"
                f"/0x100 phys=0x{r.randint(1, 1 << 20) << 12:x} ioremap"
            )
        site = r.randint(0, 199)
        mod = r.choice(["", "", " [vendor_eth]", " [leaky]"])
        return (
            f"0x{start:x}-0x{start + size:x} {size:7d} "
            f"site_v{site}+0x{site + 16:x}/0x{site + 512:x}{mod} pages={pages} vmalloc N0={pages}"
        )

    def step(self) -> None:
        r = self.rng
        if self.vm_lines:
            for i in r.sample(
                range(len(self.vm_lines)), max(1, int(len(self.vm_lines) * self.churn))
            ):
                self.vm_lines[i] = self._vm_line()  # one area freed, another allocated
        for row in r.sample(self.slab_rows, max(1, int(self.caches * self.churn))):
            row[0] = min(row[1], row[0] + r.randint(1, 5))
        for row in r.sample(self.stack_rows, max(1, int(self.stacks * self.churn))):
            row[0] += 64
            row[1] += 1
            row[2] += 1
        self.write()

    def slabinfo_text(self) -> str:
        out = [
            "slabinfo - version: 2.1",
            "# name            <active_objs> <num_objs> <objsize> <objperslab> "
            "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata "
            "<active_slabs> <num_slabs> <sharedavail>",
        ]
        for i, (a, n, size, per, pages, slabs) in enumerate(self.slab_rows):
            out.append(
                f"{'cache_' + str(i):<17s} {a:6d} {n:6d} {size:6d} {per:4d} {pages:4d}"
                f" : tunables {0:4d} {0:4d} {0:4d} : slabdata {slabs:6d} {slabs:6d}"
                f" {0:6d}"
            )
        return "\n".join(out) + "\n"

    def mlt_text(self) -> str:
        order = sorted(range(self.stacks), key=lambda i: -self.stack_rows[i][0])
        total_b = sum(r[0] for r in self.stack_rows)
        total_o = sum(r[1] for r in self.stack_rows)
        parts = [
            "mlt - version: 1.0\n",
            f"# mode full sample_bytes 65536 depth 16 tracked_objects {total_o} "
            f"tracked_bytes {total_b} stacks {self.stacks} dropped 0 untracked_frees 0 "
            f"missed_frees 0 uptime_ns 1000\n",
        ]
        for i in order:
            b, o, a, f = self.stack_rows[i]
            parts.append(
                f"stack {format_id(stack_id(self.frames[i]))} bytes {b} objects {o} "
                f"allocs {a} frees {f}\n"
            )
            parts.append("".join(f" {x}\n" for x in self.frames[i]) + "\n")
        return "".join(parts)

    def write(self) -> None:
        proc = self.root / "proc"
        (proc / "sys/kernel/random").mkdir(parents=True, exist_ok=True)
        (self.root / "sys/kernel/debug/mlt").mkdir(parents=True, exist_ok=True)
        (self.root / "etc").mkdir(parents=True, exist_ok=True)
        # Rename into place: an agent reading concurrently sees old or new, never half.
        _atomic(proc / "slabinfo", self.slabinfo_text())
        _atomic(self.root / "sys/kernel/debug/mlt/stacks", self.mlt_text())
        if self.vm_lines:
            _atomic(proc / "vmallocinfo", "\n".join(self.vm_lines) + "\n")
        (proc / "meminfo").write_text(MEMINFO.read_text())
        (proc / "buddyinfo").write_text(BUDDYINFO.read_text())
        (proc / "uptime").write_text("12345.67 23456.78\n")
        (proc / "sys/kernel/random/boot_id").write_text(self.boot_id + "\n")
        (proc / "sys/kernel/osrelease").write_text("6.1.0-synth\n")
        (self.root / "etc/machine-id").write_text(self.device_id + "\n")
        (self.root / "etc/os-release").write_text('VERSION_ID="2.3.1"\n')

    def raw_bytes(self) -> int:
        files = ["proc/slabinfo", "proc/meminfo", "proc/buddyinfo", "sys/kernel/debug/mlt/stacks"]
        if self.vm_lines:
            files.append("proc/vmallocinfo")
        return sum((self.root / f).stat().st_size for f in files)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)
