"""The ConfigMap and the image's config are renderings of the one sample, deploy/driftline.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftline.config import load_config

ROOT = Path(__file__).resolve().parents[3]
K8S_DIR = ROOT / "deploy" / "k8s"
SAMPLE = ROOT / "deploy" / "driftline.toml"


def _config_of(text: str, tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text(text)
    return load_config(path)


def test_committed_configmap_is_the_generated_one(deploy_config) -> None:
    committed = (K8S_DIR / "configmap.yaml").read_text()
    assert committed == deploy_config.render_configmap(), (
        "deploy/k8s/configmap.yaml has drifted from deploy/driftline.toml: "
        "run `python3 scripts/deploy_config.py configmap`")


def test_configmap_carries_the_kubernetes_rendering_byte_for_byte(deploy_config) -> None:
    doc = yaml.safe_load((K8S_DIR / "configmap.yaml").read_text())
    assert doc["data"]["driftline.toml"] == deploy_config.render_toml("kubernetes")
    assert doc["metadata"]["name"] == "driftline-elec"


@pytest.mark.parametrize("target", ["container", "kubernetes", "container-keyed", "keyed"])
def test_rendering_changes_only_the_listed_settings(deploy_config, target: str, tmp_path: Path) -> None:
    sample = load_config(SAMPLE).model_dump()
    rendered = _config_of(deploy_config.render_toml(target), tmp_path, f"{target}.toml").model_dump()
    overrides = deploy_config._resolve(deploy_config.TARGETS[target])
    for (section, key), (value, _why) in overrides.items():
        where = rendered[section] if section else rendered
        assert where[key] == value
        (sample[section] if section else sample)[key] = value
    assert rendered == sample


def test_containers_serve_the_admin_api_on_all_interfaces_and_keep_versions_on_the_volume(
        deploy_config, tmp_path: Path) -> None:
    for target in ("container", "kubernetes"):
        cfg = _config_of(deploy_config.render_toml(target), tmp_path, f"{target}.toml")
        assert cfg.lifecycle.admin_host == "0.0.0.0"
        assert cfg.lifecycle.token_env == "DRIFTLINE_ADMIN_TOKEN"
        assert cfg.checkpoint.store_url == "/var/lib/driftline/versions"
    assert load_config(SAMPLE).lifecycle.admin_host == "127.0.0.1"  # local runs stay on loopback


def test_an_override_of_a_key_the_sample_lacks_is_refused(deploy_config, tmp_path: Path) -> None:
    sample = tmp_path / "driftline.toml"
    sample.write_text(SAMPLE.read_text().replace('admin_host = "127.0.0.1"\n', ""))
    with pytest.raises(deploy_config.RenderError, match="admin_host"):
        deploy_config.render_toml("container", sample)


def test_check_mode_reports_a_stale_configmap(deploy_config, monkeypatch, tmp_path: Path, capsys) -> None:
    stale = tmp_path / "configmap.yaml"
    stale.write_text((K8S_DIR / "configmap.yaml").read_text().replace("max_pending = 1_000_000", "max_pending = 5"))
    monkeypatch.setattr(deploy_config, "CONFIGMAP", stale)
    assert deploy_config.main(["configmap", "--check"]) == 1
    assert "stale" in capsys.readouterr().err
    monkeypatch.setattr(deploy_config, "CONFIGMAP", K8S_DIR / "configmap.yaml")
    assert deploy_config.main(["configmap", "--check"]) == 0


@pytest.mark.parametrize("target", ["container-global", "global"])
def test_global_renderings_change_only_the_listed_settings(deploy_config, target: str) -> None:
    """As above, on the TOML (the config class refuses mode "global" until the roles exist)."""
    import tomllib

    sample = tomllib.loads(SAMPLE.read_text())
    rendered = tomllib.loads(deploy_config.render_toml(target))
    for (section, key), (value, _why) in deploy_config._resolve(deploy_config.TARGETS[target]).items():
        (sample.setdefault(section, {}) if section else sample)[key] = value
    assert rendered == sample and rendered["scale"]["mode"] == "global"


@pytest.mark.parametrize(("target", "rel"), [("keyed", "keyed/configmap.yaml"), ("global", "global/configmap.yaml")])
def test_scale_out_configmaps_are_the_generated_ones(deploy_config, target: str, rel: str) -> None:
    assert (K8S_DIR / rel).read_text() == deploy_config.render_configmap(target=target), (
        f"deploy/k8s/{rel} has drifted: run `python3 scripts/deploy_config.py configmap`")


def test_an_added_key_lands_in_its_table_and_a_shared_store_is_named_after_the_deployment(deploy_config) -> None:
    import tomllib

    text = deploy_config.render_toml("keyed")
    cfg = tomllib.loads(text)
    assert cfg["lifecycle"]["registry_url"].startswith("postgresql://")
    assert cfg["checkpoint"]["store_url"] == f"s3://driftline-versions/{cfg['name']}"
    assert "registry_url" not in tomllib.loads(SAMPLE.read_text())["lifecycle"]
