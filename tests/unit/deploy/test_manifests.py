"""deploy/k8s: valid for Kubernetes (kubeconform, strict), and wired as the service needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
K8S_DIR = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(K8S_DIR.glob("*.yaml"))


def _kubeconform(kubeconform, run, files) -> dict:
    result = run([*kubeconform, *map(str, files)])
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"kubeconform printed no report (exit {result.returncode}): {result.stderr}") from None
    return {"rc": result.returncode, **report}


def _statefulset(manifests) -> dict:
    (sts,) = manifests["statefulset.yaml"]
    return sts


def _container(manifests, name: str) -> dict:
    spec = _statefulset(manifests)["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name]
    return c


def test_every_manifest_is_valid_for_kubernetes(kubeconform, run, manifests) -> None:
    report = _kubeconform(kubeconform, run, MANIFESTS)
    bad = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert report["rc"] == 0 and not bad, bad
    assert report["summary"]["valid"] == sum(len(docs) for docs in manifests.values()) >= 3
    assert report["summary"]["skipped"] == 0


def test_kubeconform_rejects_an_unknown_field_and_a_wrong_type(kubeconform, run, tmp_path: Path) -> None:
    """The validator really validates, against schemas that know the fields (strict)."""
    text = (K8S_DIR / "statefulset.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("serviceName:", "servicName:"))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("containerPort: 8000", 'containerPort: "8000"'))
    for path, message in ((typo, "servicName"), (wrong, "containerPort")):
        report = _kubeconform(kubeconform, run, [path])
        assert report["rc"] == 1
        assert [r["status"] for r in report["resources"]] == ["statusInvalid"]
        assert message in report["resources"][0]["msg"]


def test_no_secret_is_shipped(manifests) -> None:
    """`kubectl apply -f deploy/k8s/` must never replace the Secret created by hand."""
    kinds = [doc["kind"] for docs in manifests.values() for doc in docs]
    assert "Secret" not in kinds
    assert sorted(kinds) == ["ConfigMap", "Service", "StatefulSet"]


def test_one_image_everywhere_built_by_the_dockerfile(manifests, image: str) -> None:
    spec = _statefulset(manifests)["spec"]["template"]["spec"]
    assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {image}
    assert f"docker build -f deploy/Dockerfile -t {image} ." in (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"docker build -f deploy/Dockerfile -t {image} ." in (K8S_DIR / "README.md").read_text()


def test_secrets_come_from_the_secret_and_the_required_ones_are_required(manifests) -> None:
    env = {e["name"]: e for e in _container(manifests, "driftline")["env"]}
    for name, optional in (("DRIFTLINE_SNAPSHOT_KEY", False), ("DRIFTLINE_ADMIN_TOKEN", False),
                           ("DRIFTLINE_SASL_PASSWORD", True)):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"], ref.get("optional", False)) == ("driftline-elec", name, optional)
    topics_env = {e["name"] for e in _container(manifests, "topics")["env"]}
    assert "DRIFTLINE_SASL_PASSWORD" in topics_env
    readme = (K8S_DIR / "README.md").read_text()
    assert "kubectl create secret generic driftline-elec" in readme
    assert "DRIFTLINE_SNAPSHOT_KEY=" in readme and "DRIFTLINE_ADMIN_TOKEN=" in readme


def test_metrics_and_admin_ports_are_served_exposed_and_in_the_service(manifests) -> None:
    c = _container(manifests, "driftline")
    args = " ".join(c["args"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert re.search(r"--metrics-port (\d+)", args).group(1) == str(ports["metrics"])
    assert re.search(r"--admin-port (\d+)", args).group(1) == str(ports["admin"])
    (svc,) = manifests["service.yaml"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        "metrics": (ports["metrics"], "metrics"), "admin": (ports["admin"], "admin")}
    sts = _statefulset(manifests)
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]


def test_the_pod_mounts_the_configmap_it_is_given(manifests) -> None:
    (cm,) = manifests["configmap.yaml"]
    sts = _statefulset(manifests)
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == cm["metadata"]["name"]
    for name in ("driftline", "topics"):
        c = _container(manifests, name)
        assert c["args"][:2] == ["-c", "/etc/driftline/driftline.toml"]
        assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["config"] == "/etc/driftline"
    assert list(cm["data"]) == ["driftline.toml"]
