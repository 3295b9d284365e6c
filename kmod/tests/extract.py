#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write every file a guest emitted (emit NAME FILE) out of a console log.

Usage: extract.py CONSOLE_LOG OUTDIR
Each "@@BEGIN NAME" ... "@@END NAME" section becomes OUTDIR/NAME with the
exact bytes of the guest file; "@@NOTE key value" lines go to OUTDIR/notes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import read_log  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    _, sections, notes = read_log(sys.argv[1])
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, data in sections.items():
        safe = name.replace("/", "_")
        with open(os.path.join(sys.argv[2], safe), "wb") as f:
            f.write(data)
    with open(os.path.join(sys.argv[2], "notes"), "w") as f:
        for k, v in notes.items():
            f.write("%s %s\n" % (k, v))
    print("%d files written to %s" % (len(sections), sys.argv[2]))


if __name__ == "__main__":
    main()
