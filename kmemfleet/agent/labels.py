"""Free-form device labels (`--label KEY=VALUE`), for `agent` and `record`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from kmemfleet.errors import CliError


def add_label_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a free-form label (repeatable)",
    )


def parse_labels(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    labels: dict[str, str] = {}
    for item in value or ():
        key, sep, val = str(item).partition("=")
        if not sep or not key:
            raise CliError(f"label {item!r} is not KEY=VALUE")
        labels[key] = val
    return labels
