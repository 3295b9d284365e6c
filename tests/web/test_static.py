"""The console's static files: the vendored uPlot is the pinned one, and no page
loads anything from another host (appliances' management networks are offline)."""

from __future__ import annotations

import hashlib
import re

from kmemfleet.server.web.console import static_dir


def test_vendored_uplot_matches_its_pinned_hashes() -> None:
    vendor = static_dir() / "vendor"
    lines = (vendor / "SHA256SUMS").read_text().split("\n")
    pinned = dict(reversed(line.split()) for line in lines if line.strip())
    assert set(pinned) == {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"}
    for name, digest in pinned.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def test_pages_load_nothing_from_another_host() -> None:
    static = static_dir()
    for name in ("page.html", "login.html"):
        html = (static / name).read_text()
        refs = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    js = (static / "console.js").read_text()
    assert "http://" not in js and "https://" not in js
    css = (static / "console.css").read_text()
    assert "url(" not in css and "@import" not in css
