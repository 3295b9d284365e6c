"""Frame texts as kernels print them, turned into wire Frames (pure functions).

%pB / %pS: `function+0xoffset/0xsize [module]` (size and module optional), or a
bare `0x...` address when the kernel has no symbol. /proc/allocinfo tags:
`file:line [module] func:name`. Anything else is kept whole as the function
name, so an unusual rendering still shows up, never raises.
"""

from __future__ import annotations

import re

from kmemfleet.v1 import snapshot_pb2 as pb

_U64 = (1 << 64) - 1


_HEX = re.compile(r"0x([0-9a-fA-F]{1,16})")


def _hex(token: str) -> int | None:
    # Not int(x, 16) alone: it also takes signs, spaces and underscores.
    m = _HEX.fullmatch(token)
    return int(m[1], 16) if m else None


def parse_symbol(text: str) -> pb.Frame:
    """Parse one %pB/%pS frame."""
    text = text.strip()
    module = ""
    if text.endswith("]") and " [" in text:
        text, _, mod = text.rpartition(" [")
        module = mod[:-1]
    if " " not in text:
        addr = _hex(text)
        if addr is not None:
            return pb.Frame(address=addr & _U64, module=module)
        func, plus, rest = text.partition("+")
        if plus:
            off_s, slash, len_s = rest.partition("/")
            offset = _hex(off_s)
            length = _hex(len_s) if slash else 0
            if offset is not None and length is not None:
                return pb.Frame(function=func, offset=offset, length=length, module=module)
        else:
            return pb.Frame(function=func, module=module)
    return pb.Frame(function=text, module=module)


def parse_codetag(text: str) -> pb.Frame:
    """Parse an allocinfo tag: `file:line [module] func:name` (module only for modules)."""
    frame = pb.Frame()
    for token in text.split():
        if token.startswith("func:"):
            frame.function = token[5:]
        elif token.startswith("[") and token.endswith("]"):
            frame.module = token[1:-1]
        elif ":" in token and not frame.file:
            file, _, line = token.rpartition(":")
            frame.file = file
            if line.isascii() and line.isdigit() and int(line) < 1 << 32:
                frame.line = int(line)
    if not frame.function and not frame.file:
        frame.function = text
    return frame
