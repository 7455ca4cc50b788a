"""deploy/k8s/keyed, deploy/k8s/global and their KEDA autoscalers: valid for Kubernetes and
KEDA (kubeconform, strict, with KEDA's own CRD schemas), every kustomization renders
(kustomize) to valid manifests, and the pieces are wired as the runtime needs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from driftline.config import load_config

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
DIRS = ("keyed", "keyed/keda", "global", "global/keda")
FILES = sorted(p for d in DIRS for p in (K8S / d).glob("*.yaml") if p.name != "kustomization.yaml")
# kustomization -> the kinds it renders, in kustomize's order
BUILDS = {
    "keyed": ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"],
    "autoscaled/keyed": ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "ScaledObject"],
    "global": ["ConfigMap", "Service", "Service", "StatefulSet", "StatefulSet", "PodDisruptionBudget"],
    "autoscaled/global": ["ConfigMap", "Service", "Service", "StatefulSet", "StatefulSet", "PodDisruptionBudget",
                          "ScaledObject"],
}
SECRET_ENV = {"DRIFTLINE_SNAPSHOT_KEY", "DRIFTLINE_ADMIN_TOKEN", "DRIFTLINE_SASL_PASSWORD", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "PGPASSWORD"}


def _report(kubeconform, run, args: list[str]) -> dict:
    result = run([*kubeconform, *args])
    try:
        return {"rc": result.returncode, **json.loads(result.stdout)}
    except json.JSONDecodeError:
        raise AssertionError(f"kubeconform printed no report (exit {result.returncode}): {result.stderr}") from None


def _docs(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / rel).read_text()) if d is not None]


def _one(rel: str, kind: str, name: str | None = None) -> dict:
    (doc,) = [d for d in _docs(rel) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def _toml(rel: str) -> dict:
    return tomllib.loads(_one(rel, "ConfigMap")["data"]["driftline.toml"])


def _main(sts: dict) -> dict:
    (c,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "driftline"]
    return c


def test_every_scale_out_manifest_is_valid_for_kubernetes_and_keda(kubeconform, run) -> None:
    report = _report(kubeconform, run, [str(p) for p in FILES])
    bad = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert report["rc"] == 0 and not bad, bad
    kinds = sorted(d["kind"] for p in FILES for d in yaml.safe_load_all(p.read_text()) if d)
    assert report["summary"]["valid"] == len(kinds) and report["summary"]["skipped"] == 0
    assert kinds.count("ScaledObject") == 2 and "Secret" not in kinds


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_every_kustomization_renders_valid_manifests(kustomize, kubeconform, run, build: str, tmp_path: Path) -> None:
    result = run([kustomize, "build", str(K8S / build)])
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(result.stdout)
    assert [d["kind"] for d in yaml.safe_load_all(result.stdout) if d] == BUILDS[build]
    report = _report(kubeconform, run, [str(rendered)])
    assert report["rc"] == 0 and report["summary"]["valid"] == len(BUILDS[build]), report


@pytest.mark.parametrize("directory", ["keyed", "global"])
def test_each_kustomization_lists_every_manifest_of_its_folder(directory: str) -> None:
    listed = yaml.safe_load((K8S / directory / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (K8S / directory).glob("*.yaml") if p.name != "kustomization.yaml")
    component = yaml.safe_load((K8S / directory / "keda" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component" and component["resources"] == ["scaledobject.yaml"]


@pytest.mark.parametrize(("edit", "where"), [
    (("minReplicaCount: 1", "minReplicaCont: 1"), "minReplicaCont"),           # unknown field (strict)
    (("maxReplicaCount: 6", "maxReplicaCount: six"), "maxReplicaCount"),       # wrong type
    (("    - type: kafka\n      metadata:", "    - metadata:"), "type"),        # a required field gone
])
def test_the_keda_schema_really_validates_a_scaledobject(kubeconform, run, tmp_path: Path, edit, where) -> None:
    broken = tmp_path / "scaledobject.yaml"
    text = (K8S / "keyed" / "keda" / "scaledobject.yaml").read_text()
    assert edit[0] in text
    broken.write_text(text.replace(edit[0], edit[1]))
    report = _report(kubeconform, run, [str(broken)])
    assert report["rc"] == 1 and [r["status"] for r in report["resources"]] == ["statusInvalid"]
    assert where in report["resources"][0]["msg"]


def _configmap_config(rel: str, tmp_path: Path):
    path = tmp_path / "driftline.toml"
    path.write_text(_one(rel, "ConfigMap")["data"]["driftline.toml"])
    return load_config(path)


def test_keyed_workers_take_their_ordinal_as_instance_and_the_autoscaler_their_group(tmp_path: Path) -> None:
    sts = _one("keyed/statefulset.yaml", "StatefulSet")
    c = _main(sts)
    env = {e["name"]: e for e in c["env"]}
    assert env["DRIFTLINE_INSTANCE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']")
    args = c["args"]
    assert args[:3] == ["-c", "/etc/driftline/driftline.toml", "run"]
    assert args[args.index("--instance") + 1] == "$(DRIFTLINE_INSTANCE)"
    config = _configmap_config("keyed/configmap.yaml", tmp_path)
    assert config.scale.mode == "keyed"
    assert config.checkpoint.store_url.startswith("s3://") and config.lifecycle.registry_url.startswith("postgresql://")
    so = _one("keyed/keda/scaledobject.yaml", "ScaledObject")
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] == config.group_id
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": sts["metadata"]["name"]}
    assert 1 <= so["spec"]["minReplicaCount"] <= sts["spec"]["replicas"] <= so["spec"]["maxReplicaCount"]
    assert 4 * so["spec"]["maxReplicaCount"] <= config.partitions  # docs/scaling.md: partitions >= 4 x members


def test_global_mode_runs_one_trainer_and_scaled_predictors() -> None:
    trainer = _one("global/trainer.yaml", "StatefulSet")
    predictor = _one("global/predictor.yaml", "StatefulSet")
    assert trainer["spec"]["replicas"] == 1
    t_args, p_args = _main(trainer)["args"], _main(predictor)["args"]
    assert t_args[2:5] == ["run", "--role", "trainer"] and "--instance" not in t_args
    assert p_args[2:5] == ["run", "--role", "predictor"]
    assert p_args[p_args.index("--instance") + 1] == "$(DRIFTLINE_INSTANCE)"
    assert "DRIFTLINE_INSTANCE" in {e["name"] for e in _main(predictor)["env"]}
    cfg = _toml("global/configmap.yaml")
    assert cfg["scale"]["mode"] == "global"
    so = _one("global/keda/scaledobject.yaml", "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == predictor["metadata"]["name"]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == f"{cfg['topic_prefix']}.{cfg['name']}.features"
    assert trigger["metadata"]["consumerGroup"] == load_config(**cfg).predictor_group_id
    assert 4 * so["spec"]["maxReplicaCount"] <= cfg["partitions"]
    # the trainer's pods are never selected by the predictors' budget, Service or autoscaler
    trainer_labels = trainer["spec"]["template"]["metadata"]["labels"]
    pdb = _one("global/pdb.yaml", "PodDisruptionBudget")
    assert not pdb["spec"]["selector"]["matchLabels"].items() <= trainer_labels.items()


STATEFULSETS = [("keyed/statefulset.yaml", "keyed/service.yaml"), ("global/trainer.yaml", "global/service.yaml"),
                ("global/predictor.yaml", "global/service.yaml")]


@pytest.mark.parametrize(("sts_file", "svc_file"), STATEFULSETS)
def test_each_statefulset_is_wired_to_its_service_ports_probes_config_and_secret(sts_file, svc_file) -> None:
    sts = _one(sts_file, "StatefulSet")
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = _one(svc_file, "Service", sts["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["selector"].items() <= labels.items()
    c = _main(sts)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    args = " ".join(c["args"])
    assert re.search(r"--metrics-port (\d+)", args).group(1) == str(ports["metrics"])
    assert re.search(r"--admin-port (\d+)", args).group(1) == str(ports["admin"])
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= set(ports)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] in ports and get["path"] in {"/metrics", "/health"}  # what the process serves
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    cm_name = pod["spec"]["volumes"][0]["configMap"]["name"]
    cm = _one(str(Path(sts_file).parent / "configmap.yaml"), "ConfigMap")
    assert cm["metadata"]["name"] == cm_name
    secret = sts["metadata"]["name"].removesuffix("-trainer").removesuffix("-predictor")
    for container in pod["spec"]["containers"] + pod["spec"]["initContainers"]:
        for e in container["env"]:
            if e["name"] in SECRET_ENV:
                ref = e["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == (secret, e["name"])
    required = {e["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})
                and not e["valueFrom"]["secretKeyRef"].get("optional", False)}
    assert required == {"DRIFTLINE_SNAPSHOT_KEY", "DRIFTLINE_ADMIN_TOKEN", "AWS_ACCESS_KEY_ID",
                        "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"}


@pytest.mark.parametrize("rel", ["keyed/configmap.yaml", "global/configmap.yaml"])
def test_no_secret_in_a_configmap(rel: str) -> None:
    text = _one(rel, "ConfigMap")["data"]["driftline.toml"]
    cfg = tomllib.loads(text)
    assert cfg["checkpoint"]["key_env"] == "DRIFTLINE_SNAPSHOT_KEY"
    assert "sasl_password" not in cfg["kafka"]
    assert ":" not in cfg["lifecycle"]["registry_url"].split("@")[0].removeprefix("postgresql://")  # no password
