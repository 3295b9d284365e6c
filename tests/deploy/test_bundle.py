"""Agent bundles (deploy/bundle/build.sh) for x86_64, aarch64 and armv7l.

Every bundle is built for real from target wheels, unpacked from its tarball as
a firmware root would be, and run:
- x86_64 on this machine's CPython in a fresh virtualenv that has no packages;
- aarch64 and armv7l on a Debian bookworm root's own python3 for that
  architecture, under qemu-user-static (made by .ci/install-deploy.sh),
and each streams one snapshot to a real `kmemfleet server` on loopback, which
stores it under the architecture the emulated device reported.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, RunningServer, need, run_cli
from tests.fakeroot import SLABINFO, make_root

DEPLOY_CACHE = Path(os.environ.get("DEPLOY_CACHE", "/var/cache/kmemfleet-deploy"))
INSTALL = "bash .ci/install-deploy.sh"
# arch -> (Debian arch of the emulated root, qemu-user binary, ELF e_machine)
ARCHES = {
    "x86_64": ("amd64", None, 62),
    "aarch64": ("arm64", "qemu-aarch64-static", 183),
    "armv7l": ("armhf", "qemu-arm-static", 40),
}
TARGET_PY = "3.11"  # Debian bookworm's python3, the emulated roots' interpreter
HOST_PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


_built: dict[str, Path] = {}


def build(arch: str, out: Path) -> Path:
    """Run `make bundle`'s script for one arch; returns the agent tarball."""
    if arch in _built:
        return _built[arch]
    pyvers = TARGET_PY if arch != "x86_64" else " ".join(sorted({TARGET_PY, HOST_PY}))
    env = {**os.environ, "BUNDLE_OUT": str(out), "PYTHON_VERSIONS": pyvers}
    env.pop("KDIR", None)
    proc = subprocess.run(
        ["bash", "deploy/bundle/build.sh", arch],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = out.glob(f"kmemfleet-agent-*-{arch}.tar.gz")
    _built[arch] = tarball
    return tarball


def unpack(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="tar")
    return dest


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not ELF"
    return int.from_bytes(header[18:20], "little")


@pytest.mark.parametrize("arch", list(ARCHES))
def test_bundle_tarball_unpacks_into_a_firmware_root_with_target_binaries(
    arch: str, bundle_dir: Path, tmp_path: Path
) -> None:
    tarball = build(arch, bundle_dir)
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
    assert all(m.uid == 0 and m.gid == 0 for m in members)
    assert all(not m.name.startswith("/") and ".." not in m.name.split("/") for m in members)
    root = unpack(tarball, tmp_path / "fw")
    launcher = root / "opt/kmemfleet/bin/kmemfleet"
    assert launcher.stat().st_mode & stat.S_IXUSR
    assert (root / "usr/bin/kmemfleet").resolve() == launcher.resolve()
    assert (root / "etc/init.d/S95kmemfleet-agent").stat().st_mode & stat.S_IXUSR
    assert (root / "usr/lib/systemd/system/kmemfleet-agent.service").is_file()
    assert (root / "etc/default/kmemfleet-agent").is_file()
    lib = root / f"opt/kmemfleet/lib/python{TARGET_PY}"
    # The device runs the agent only: no server code travels.
    assert (lib / "kmemfleet/agent").is_dir()
    assert not (lib / "kmemfleet/server").exists()
    (cygrpc,) = (lib / "grpc/_cython").glob("cygrpc*.so")
    assert elf_machine(cygrpc) == ARCHES[arch][2]
    # protobuf's fast (upb) extension where PyPI has one; armv7l gets pure Python.
    upb = list((lib / "google/_upb").glob("_message*.so"))
    if arch == "armv7l":
        assert not upb
    else:
        assert [elf_machine(p) for p in upb] == [ARCHES[arch][2]]
    manifest = json.loads((root / "opt/kmemfleet/BUNDLE.json").read_text())
    assert manifest["arch"] == arch
    assert any(p.split("/")[1].startswith("grpcio-") for p in manifest["packages"])
    assert any(p.split("/")[1].startswith("protobuf-") for p in manifest["packages"])


def _stored_device(address: str, device_id: str) -> dict[str, object]:
    out = run_cli("devices", "--insecure", "--server", address, "--json")
    assert out.returncode == 0, out.stderr
    found = [d for d in json.loads(out.stdout)["devices"] if d["device_id"] == device_id]
    assert found, f"{device_id} not stored: {out.stdout}"
    return dict(found[0])


def _slab_rows(address: str, device_id: str) -> int:
    out = run_cli("slabs", "--insecure", "--server", address, "--device", device_id, "--json")
    assert out.returncode == 0, out.stderr
    return len(json.loads(out.stdout)["caches"])


def run_bundle_agent(
    root: Path, python: Path, server: RunningServer, tmp: Path, device_id: str
) -> subprocess.CompletedProcess[str]:
    device = make_root(tmp, device_id=device_id, firmware="9.1.0")
    env = {"PATH": "/usr/bin:/bin", "KMEMFLEET_PYTHON": str(python), "HOME": str(tmp)}
    return subprocess.run(
        [
            str(root / "usr/bin/kmemfleet"),
            "agent",
            "--once",
            "--insecure",
            "--server",
            server.address,
            "--proc-root",
            str(device),
            "--spool-dir",
            str(tmp / "spool"),
            "--once-timeout",
            "120",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_x86_64_bundle_streams_a_snapshot_from_a_python_without_any_packages(
    grpc_server: RunningServer, bundle_dir: Path, tmp_path: Path
) -> None:
    root = unpack(build("x86_64", bundle_dir), tmp_path / "fw")
    # A fresh virtualenv of the base interpreter: no grpcio, protobuf, structlog.
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run(
        [str(base), "-m", "venv", "--without-pip", str(tmp_path / "clean")],
        check=True,
        capture_output=True,
    )
    python = tmp_path / "clean/bin/python"
    bare = subprocess.run([str(python), "-c", "import grpc"], capture_output=True, cwd=tmp_path)
    assert bare.returncode != 0, "the clean interpreter must not have grpcio"

    agent = run_bundle_agent(root, python, grpc_server, tmp_path, "dev-bundle-x86_64")
    assert agent.returncode == 0, agent.stdout + agent.stderr
    assert "stored 1" in agent.stdout
    device = _stored_device(grpc_server.address, "dev-bundle-x86_64")
    assert device["arch"] == "x86_64"
    assert device["firmware_version"] == "9.1.0"
    expected = [ln for ln in SLABINFO.read_text().splitlines()[2:] if ln.strip()]
    assert _slab_rows(grpc_server.address, "dev-bundle-x86_64") == len(expected)


def emulated_python(arch: str, tmp: Path) -> Path:
    """An executable that runs the target root's own python3 under qemu-user."""
    debarch, qemu, _ = ARCHES[arch]
    assert qemu is not None
    need(shutil.which(qemu) is not None, qemu, INSTALL)
    rootfs = DEPLOY_CACHE / f"rootfs-{debarch}"
    need((rootfs / ".kmemfleet-done").is_file(), f"the {debarch} Debian root {rootfs}", INSTALL)
    target = rootfs / f"usr/bin/python{TARGET_PY}"
    wrapper = tmp / f"python-{arch}"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which(qemu)} -L {rootfs} {target} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["aarch64", "armv7l"])
def test_arm_bundle_streams_a_snapshot_from_the_target_python_under_qemu(
    arch: str, grpc_server: RunningServer, bundle_dir: Path, tmp_path: Path
) -> None:
    python = emulated_python(arch, tmp_path)
    machine = subprocess.run(
        [str(python), "-c", "import os; print(os.uname().machine)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert machine.stdout.strip() == arch, machine.stderr
    root = unpack(build(arch, bundle_dir), tmp_path / "fw")

    agent = run_bundle_agent(root, python, grpc_server, tmp_path, f"dev-bundle-{arch}")
    assert agent.returncode == 0, agent.stdout + agent.stderr
    assert "stored 1" in agent.stdout
    device = _stored_device(grpc_server.address, f"dev-bundle-{arch}")
    assert device["arch"] == arch  # os.uname() of the emulated device
    expected = [ln for ln in SLABINFO.read_text().splitlines()[2:] if ln.strip()]
    assert _slab_rows(grpc_server.address, f"dev-bundle-{arch}") == len(expected)


def test_launcher_names_the_missing_python_version_instead_of_a_traceback(
    bundle_dir: Path, tmp_path: Path
) -> None:
    root = unpack(build("x86_64", bundle_dir), tmp_path / "fw")
    lib = root / "opt/kmemfleet/lib"
    for d in lib.iterdir():
        d.rename(lib / "python3.99")
        break
    for d in list(lib.iterdir()):
        if d.name != "python3.99":
            shutil.rmtree(d)
    out = subprocess.run(
        [str(root / "usr/bin/kmemfleet"), "agent", "--once"],
        env={"PATH": os.environ["PATH"], "KMEMFLEET_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 69
    assert f"is Python {HOST_PY}" in out.stderr
    assert "python3.99" in out.stderr
    assert "PYTHON_VERSIONS" in out.stderr


def test_collector_package_writes_a_bundle_that_the_server_stores(
    grpc_server: RunningServer, bundle_dir: Path, tmp_path: Path
) -> None:
    need((REPO / "deploy/collector.sh").is_file(), "deploy/collector.sh", "the agent issue")
    need(shutil.which("busybox") is not None, "busybox", "apt-get install busybox-static")
    build("x86_64", bundle_dir)
    (tarball,) = bundle_dir.glob("kmemfleet-collector-*.tar.gz")
    root = unpack(tarball, tmp_path / "fw")
    collector = root / "opt/kmemfleet/collector/collector.sh"
    assert (root / "etc/init.d/S95kmemfleet-collector").stat().st_mode & stat.S_IXUSR
    device = make_root(tmp_path, device_id="dev-collector-1", firmware="1.0.7")
    out = tmp_path / "bundle"
    env = {"PATH": "/usr/bin:/bin"}
    cap = subprocess.run(
        ["busybox", "sh", str(collector), "-r", str(device), str(out), "1", "2"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cap.returncode == 0, cap.stderr
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2
    imp = run_cli("import", str(out), "--insecure", "--server", grpc_server.address, "--quiet")
    assert imp.returncode == 0, imp.stderr
    stored = _stored_device(grpc_server.address, "dev-collector-1")
    assert stored["snapshots"] == 2
    assert stored["firmware_version"] == "1.0.7"


def test_busybox_init_script_starts_the_agent_which_streams_until_stopped(
    grpc_server: RunningServer, bundle_dir: Path, tmp_path: Path
) -> None:
    need(shutil.which("busybox") is not None, "busybox", "apt-get install busybox-static")
    root = unpack(build("x86_64", bundle_dir), tmp_path / "fw")
    # busybox applets first on PATH, as on a device; paths moved under tmp.
    applets = tmp_path / "bb"
    applets.mkdir()
    for name in ("start-stop-daemon", "sh", "grep", "mount", "modprobe"):
        (applets / name).symlink_to(shutil.which("busybox") or "busybox")
    script = (root / "etc/init.d/S95kmemfleet-agent").read_text()
    script = script.replace("DAEMON=/opt/kmemfleet", f"DAEMON={root}/opt/kmemfleet")
    script = script.replace("PIDFILE=/var/run/$NAME.pid", f"PIDFILE={tmp_path}/agent.pid")
    script = script.replace("/etc/default/$NAME", f"{tmp_path}/default")
    init = tmp_path / "S95kmemfleet-agent"
    init.write_text(script)
    device = make_root(tmp_path, device_id="dev-init-1")
    (tmp_path / "default").write_text(
        f"KMEMFLEET_SERVER={grpc_server.address}\nKMEMFLEET_INTERVAL=1\n"
        f'KMEMFLEET_ARGS="--insecure --proc-root {device} --spool-dir {tmp_path}/spool"\n'
        f"KMEMFLEET_LOAD_MODULE=no\nKMEMFLEET_USER=no-such-user-kmf\n"
        f"KMEMFLEET_LOG={tmp_path}/agent.log\n"
    )
    env = {"PATH": f"{applets}:/usr/bin:/bin"}

    def rc(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["busybox", "sh", str(init), action], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    assert "OK" in rc("start").stdout
    try:
        assert rc("status").returncode == 0
        deadline = time.monotonic() + 90
        stored = 0
        while time.monotonic() < deadline and stored < 2:
            time.sleep(1)
            out = run_cli("devices", "--insecure", "--server", grpc_server.address, "--json")
            devs = json.loads(out.stdout)["devices"] if out.returncode == 0 else []
            stored = sum(d["snapshots"] for d in devs if d["device_id"] == "dev-init-1")
        assert stored >= 2, (tmp_path / "agent.log").read_text()[-2000:]
    finally:
        assert "OK" in rc("stop").stdout
    assert rc("status").returncode == 3


def test_agent_reads_the_real_proc_slabinfo_with_only_cap_dac_read_search(
    grpc_server: RunningServer, bundle_dir: Path
) -> None:
    """The privilege the systemd unit and init script grant is enough, and needed."""
    need(os.geteuid() == 0, "root (to drop to nobody with one capability)", "run as root")
    need(shutil.which("setpriv") is not None, "setpriv", "apt-get install util-linux")
    python = Path(f"/usr/bin/python{TARGET_PY}")
    need(python.is_file(), str(python), f"apt-get install python{TARGET_PY}")
    work = Path(tempfile.mkdtemp(prefix="kmemfleet-cap-", dir="/tmp"))
    try:
        work.chmod(0o755)
        root = unpack(build("x86_64", bundle_dir), work / "fw")
        spool = work / "spool"
        spool.mkdir(mode=0o777)
        spool.chmod(0o777)
        agent = [
            str(root / "usr/bin/kmemfleet"), "agent", "--once", "--insecure",
            "--server", grpc_server.address, "--spool-dir", str(spool),
            "--device-id", "dev-cap-1", "--once-timeout", "60",
        ]  # fmt: skip
        drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        env = {"PATH": "/usr/bin:/bin", "KMEMFLEET_PYTHON": str(python)}
        bare = subprocess.run(
            [*drop, "--inh-caps=-all", "--bounding-set=-all", *agent],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert bare.returncode != 0
        assert "slabinfo" in bare.stderr
        one = "-all,+dac_read_search"
        ok = subprocess.run(
            [*drop, f"--inh-caps={one}", f"--ambient-caps={one}", f"--bounding-set={one}",
             *agent],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert _slab_rows(grpc_server.address, "dev-cap-1") > 10
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_bundle_with_kdir_carries_mlt_ko_built_for_the_target_kernel(tmp_path: Path) -> None:
    kmod_cache = Path(os.environ.get("KMOD_CACHE", "/var/cache/kmemfleet-kmod"))
    kdir = kmod_cache / "arm64/headers"
    need((kdir / "Makefile").is_file(), "arm64 kernel headers", "bash .ci/install-kmod.sh")
    need(shutil.which("aarch64-linux-gnu-gcc") is not None, "aarch64-linux-gnu-gcc",
         "bash .ci/install-kmod.sh")  # fmt: skip
    uts = (kdir / "include/generated/utsrelease.h").read_text()
    release = uts.split('UTS_RELEASE "', 1)[1].split('"', 1)[0]
    env = {**os.environ, "BUNDLE_OUT": str(tmp_path), "KDIR": str(kdir)}
    proc = subprocess.run(["bash", "deploy/bundle/build.sh", "aarch64"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (tarball,) = tmp_path.glob("kmemfleet-agent-*-aarch64.tar.gz")
    root = unpack(tarball, tmp_path / "fw")
    ko = root / f"lib/modules/{release}/extra/mlt.ko"
    assert elf_machine(ko) == 183
    assert (root / "etc/modules-load.d/mlt.conf").read_text().strip() == "mlt"
    manifest = json.loads((root / "opt/kmemfleet/BUNDLE.json").read_text())
    assert manifest["kernel_module_for"] == release
