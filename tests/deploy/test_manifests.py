"""Deployment files that cannot run here (no container engine, no cluster) are
validated as far as this machine allows: Kubernetes objects against the API's
JSON schemas, compose files by docker-compose's own `config`, YAML by yamllint,
shell by shellcheck, the systemd unit by systemd-analyze; and the image's gRPC
health probe is run for real against a server on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO, RunningServer, free_port, need

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
INSTALL = "bash .ci/install-deploy.sh"
K8S_VERSION = "1.30.0"  # oldest Kubernetes these manifests promise to work on


def load_k8s() -> list[dict[str, Any]]:
    try:
        import yaml
    except ImportError:
        need(False, "PyYAML", INSTALL)
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        need(False, "kubernetes-validate", INSTALL)
    docs = load_k8s()
    (kustomization,) = by_kind(docs, "Kustomization")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    objects = [d for d in docs if d["kind"] != "Kustomization"]
    assert {d["kind"] for d in objects} >= {
        "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret",
    }  # fmt: skip
    for doc in objects:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_objects_point_at_each_other() -> None:
    docs = load_k8s()
    (deploy,) = by_kind(docs, "Deployment")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    for svc in by_kind(docs, "Service"):
        assert svc["spec"]["selector"].items() <= labels.items()
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    # Every secret key the pod uses exists in the Secret.
    (secret,) = by_kind(docs, "Secret")
    keys = set(secret["stringData"])
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    refs |= {
        item["key"]
        for v in deploy["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
        for item in v["secret"]["items"]
    }
    assert refs <= keys
    # Readiness comes from the gRPC health service; the container cannot escalate.
    assert container["readinessProbe"]["exec"]["command"][0] == "kmemfleet-healthcheck"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}


@pytest.mark.parametrize("compose", ["compose/compose.yaml", "citus/compose.yaml"])
def test_compose_files_are_valid_for_docker_compose(compose: str) -> None:
    need(shutil.which("docker-compose") is not None, "docker-compose", INSTALL)
    path = DEPLOY / compose
    env = {**os.environ, "POSTGRES_PASSWORD": "test-only"}
    out = subprocess.run(["docker-compose", "-f", str(path), "config"], cwd=path.parent,
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    services = subprocess.run(
        ["docker-compose", "-f", str(path), "config", "--services"],
        cwd=path.parent, env=env, capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    if compose.startswith("citus"):
        assert set(services) == {"coordinator", "worker1", "worker2", "citus-setup", "server"}
        assert "service_completed_successfully" in out.stdout
    else:
        assert set(services) == {"postgres", "server"}
        assert "service_healthy" in out.stdout


def test_deploy_yaml_passes_yamllint() -> None:
    need(shutil.which("yamllint") is not None, "yamllint", INSTALL)
    out = subprocess.run(["yamllint", "--strict", "-c", str(DEPLOY / ".yamllint"), str(DEPLOY)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_deploy_shell_scripts_pass_shellcheck() -> None:
    need(shutil.which("shellcheck") is not None, "shellcheck", INSTALL)
    scripts = [
        DEPLOY / "bundle/build.sh",
        DEPLOY / "container/build-amd64-here.sh",
        REPO / ".ci/install-deploy.sh",
        REPO / ".ci/install-citus.sh",
    ]
    posix = [
        DEPLOY / "bundle/kmemfleet.sh",
        DEPLOY / "bundle/S95kmemfleet-agent",
        DEPLOY / "bundle/S95kmemfleet-collector",
        DEPLOY / "compose/make-dev-certs.sh",
    ]
    for shell, files in (("bash", scripts), ("sh", posix)):
        out = subprocess.run(["shellcheck", "-s", shell, *map(str, files)],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stdout


def test_systemd_unit_holds_only_cap_dac_read_search_and_scores_ok() -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze", INSTALL)
    unit = DEPLOY / "systemd/kmemfleet-agent.service"
    text = unit.read_text()
    assert re.search(r"^AmbientCapabilities=CAP_DAC_READ_SEARCH$", text, re.M)
    assert re.search(r"^CapabilityBoundingSet=CAP_DAC_READ_SEARCH$", text, re.M)
    assert "CAP_SYS_ADMIN" not in re.sub(r"#.*", "", text)
    assert "ProcSubset=pid" not in re.sub(r"#.*", "", text)  # would hide /proc/slabinfo
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    assert float(m.group(1)) <= 2.5, out.stdout


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEPLOY / "container/healthcheck.py"), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_health_probe_reports_a_serving_server(grpc_server: RunningServer) -> None:
    ok = healthcheck("--insecure", "--address", grpc_server.address)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "SERVING"


def test_health_probe_fails_when_nothing_listens() -> None:
    down = healthcheck("--insecure", "--address", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert down.returncode == 1
    assert "unhealthy" in down.stderr


def test_server_image_runs_as_non_root_and_probes_health() -> None:
    text = (DEPLOY / "container/server.Containerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'CMD ["kmemfleet-healthcheck"]' in text
    agent = (DEPLOY / "container/agent.Containerfile").read_text()
    assert "linux/amd64,linux/arm64,linux/arm/v7" in agent
    assert "--cap-drop ALL" in agent and "--cap-add DAC_READ_SEARCH" in agent
