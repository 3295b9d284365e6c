"""Agent settings (TOML file, flags win) and the agent's plain errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmemfleet.agent.config import load_file, merge
from kmemfleet.errors import CliError
from tests.agent.synth import SyntheticDevice
from tests.conftest import free_port, run_cli


def test_file_keys_apply_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMEMFLEET_SERVER", raising=False)
    monkeypatch.delenv("KMEMFLEET_TOKEN", raising=False)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[agent]\nserver = "file:1"\ninterval = 30\nspool-dir = "/x"\n'
        'insecure = true\nlabels = { site = "lab" }\nkeyframe_every = 4\n'
    )
    values = merge(
        {"server": "flag:2", "interval": None, "labels": [], "insecure": False}, load_file(cfg)
    )
    assert values.server == "flag:2"
    assert values.interval == 30.0 and values.spool_dir == Path("/x")
    assert values.insecure is True and values.labels == {"site": "lab"}
    assert values.keyframe_every == 4 and values.backoff_max == 300.0  # default


def test_environment_token_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMEMFLEET_TOKEN", "from-env")
    cfg = tmp_path / "agent.toml"
    cfg.write_text('token = "from-file"\n')
    assert merge({"token": None}, load_file(cfg)).token == "from-env"
    assert merge({"token": "flag"}, load_file(cfg)).token == "flag"


def test_unknown_key_and_bad_toml_are_plain_errors(tmp_path: Path) -> None:
    bad = tmp_path / "a.toml"
    bad.write_text("intervall = 3\n")
    with pytest.raises(CliError, match="unknown key 'intervall'"):
        load_file(bad)
    bad.write_text("interval = \n")
    with pytest.raises(CliError, match="config file"):
        load_file(bad)
    # Settings without a flag are not file keys: the machine type is detected.
    for key in ("arch", "gzip"):
        bad.write_text(f"{key} = false\n")
        with pytest.raises(CliError, match=f"unknown key '{key}'"):
            load_file(bad)


def test_agent_reads_its_config_file(tmp_path: Path) -> None:
    # The server named in the file does not answer: the error names it.
    dev = SyntheticDevice(tmp_path / "root", caches=3, stacks=3)
    port = free_port()
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'server = "127.0.0.1:{port}"\ninsecure = true\n'
        f'proc-root = "{dev.root}"\nspool-dir = "{tmp_path / "spool"}"\n'
        "once-timeout = 2\nbackoff-initial = 0.1\n"
    )
    out = run_cli("agent", "--once", "--config", str(cfg))
    assert out.returncode == 1
    assert f"127.0.0.1:{port}" in out.stderr and "stay in the spool" in out.stderr
    assert len(list((tmp_path / "spool").glob("*.k"))) == 1


def test_unreadable_slabinfo_is_a_plain_error(tmp_path: Path) -> None:
    dev = SyntheticDevice(tmp_path / "root", caches=3, stacks=3)
    (dev.root / "proc/slabinfo").unlink()
    (dev.root / "proc/slabinfo").mkdir()  # unreadable as a file, even for root
    out = run_cli(
        "agent",
        "--once",
        "--insecure",
        "--server",
        "127.0.0.1:1",
        "--proc-root",
        str(dev.root),
        "--spool-dir",
        str(tmp_path / "spool"),
    )
    assert out.returncode == 1
    assert "/proc/slabinfo" in out.stderr and "Traceback" not in out.stderr


def test_permission_message_explains_mode_0400(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from kmemfleet.agent.collectors.base import read_text
    from kmemfleet.errors import SourceError

    def denied(*a: object, **k: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # root reads anything: deny as a device would
    with pytest.raises(SourceError, match="mode 0400"):
        read_text(Path("/proc/slabinfo"), "/proc/slabinfo")
