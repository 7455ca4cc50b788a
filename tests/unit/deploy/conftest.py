"""Fixtures of the deployment-file tests: the validators of scripts/deploy_tools.sh, the
manifests, and the renderer scripts/deploy_config.py. No network: the validators and the
Kubernetes schemas are local files, installed by scripts/setup.sh."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TOOLS = ROOT / ".cache" / "deploy-tools"
K8S_DIR = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(K8S_DIR.glob("*.yaml"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"driftline:{VERSION}"


def _installed(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{what} missing at {path}: run scripts/deploy_tools.sh (scripts/setup.sh "
                    "runs it; it needs Go 1.26+ and PyPI once)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def kubeconform() -> list[str]:
    """The kubeconform command line: strict, on the Kubernetes schemas of .cache only."""
    binary = _installed(TOOLS / "bin" / "kubeconform", "kubeconform")
    schemas = _installed(TOOLS / "k8s-schemas" / "_definitions.json", "the Kubernetes JSON schemas").parent
    crds = _installed(TOOLS / "crd-schemas" / "keda.sh" / "scaledobject_v1alpha1.json", "KEDA's CRD schemas")
    return [str(binary), "-strict", "-summary", "-verbose", "-output", "json",
            "-schema-location", f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-schema-location",
            f"{crds.parents[1]}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"]


@pytest.fixture(scope="session")
def kustomize() -> str:
    return str(_installed(TOOLS / "bin" / "kustomize", "kustomize"))


@pytest.fixture(scope="session")
def compose_check() -> str:
    return str(_installed(TOOLS / "bin" / "compose-check", "compose-check"))


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(cmd, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def run():
    """Run a validator in the repository root with only PATH and HOME of the caller's
    environment, plus the ``env`` given: nothing of the developer's shell leaks in."""
    return _run


@pytest.fixture(scope="session")
def image() -> str:
    """The one image name: driftline:<the project's version>."""
    return IMAGE


@pytest.fixture(scope="session")
def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML document of deploy/k8s, by file name."""
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None] for p in MANIFESTS}


@pytest.fixture(scope="session")
def deploy_config() -> ModuleType:
    """scripts/deploy_config.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("deploy_config", ROOT / "scripts" / "deploy_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("deploy_config", module)
    spec.loader.exec_module(module)
    return module



def _debian_tool(name: str, package: str) -> str:
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/setup.sh installs Debian's {package} package "
                    "(as root, or run: sudo apt-get install prometheus prometheus-alertmanager)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _debian_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _debian_tool("amtool", "prometheus-alertmanager")


def _selector_names(expr: str) -> set[str]:
    """The metric names an expression selects (promql-parser's syntax tree, walked)."""
    import promql_parser

    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
            return
        for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)
        for arg in getattr(node, "args", None) or ():
            walk(arg)

    walk(promql_parser.parse(expr))
    return names


@pytest.fixture(scope="session")
def selector_names():
    """``selector_names(expr)``: the metric names a PromQL expression selects; raises on bad syntax."""
    return _selector_names


@pytest.fixture(scope="session")
def exported_metrics() -> set[str]:
    """Every series name a processor's registry exposes (single, keyed and global mode), with
    every optional family filled."""
    from prometheus_client import CollectorRegistry

    from driftline.observability.global_metrics import GlobalMetrics, ServedMetrics
    from driftline.observability.metrics import ProcessorMetrics

    registry = CollectorRegistry()
    metrics = ProcessorMetrics("m", registry=registry)
    metrics.watch(lambda: {
        "scores": {"rolling_accuracy": 0.5}, "lag": {"features-0": 1}, "served": {"champion": {"accuracy": 1.0}},
        "data_drift": {"x": {"test": "ks", "statistic": 0.1, "p_value": 0.5, "psi": 0.01, "drift": False}},
        "keyed": {"tasks": {0: {"keys": 1, "resident": 1, "records": 2}}, "top": [("k", 2)]},
    })
    GlobalMetrics("m", registry=registry)  # global mode's trainer and predictors
    ServedMetrics("m", "classification", registry=registry)  # predictors with [scale] served_labels
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Labelled counters and histograms show samples only once a child exists; add their series.
    for family in registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


@pytest.fixture(scope="session")
def grafana_dashboard() -> ModuleType:
    """scripts/grafana_dashboard.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("grafana_dashboard", ROOT / "scripts" / "grafana_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("grafana_dashboard", module)
    spec.loader.exec_module(module)
    return module
