"""docker-compose.yml through compose-go, the loader of `docker compose config`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

SECRETS = {"DRIFTLINE_SNAPSHOT_KEY": "k" * 64, "DRIFTLINE_ADMIN_TOKEN": "t" * 64}


@pytest.fixture
def env_file(tmp_path: Path) -> str:
    """An empty variables file: no .env of the developer's is read."""
    path = tmp_path / "empty.env"
    path.write_text("")
    return str(path)


@pytest.fixture
def project(compose_check, run, env_file) -> dict:
    result = run([compose_check, "--env-file", env_file], env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_compose_file_loads_and_keeps_its_broker(project) -> None:
    assert set(project["services"]) == {"kafka", "topics", "driftline"}
    assert project["services"]["kafka"]["image"].startswith("apache/kafka:")


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(compose_check, run, env_file, missing: str) -> None:
    for value in (None, ""):  # unset, or set empty
        env = {k: v for k, v in SECRETS.items() if k != missing}
        if value is not None:
            env[missing] = value
        result = run([compose_check, "--env-file", env_file], env=env)
        assert result.returncode == 1
        assert f"required variable {missing} is missing a value" in result.stderr


def test_secrets_can_come_from_an_env_file(compose_check, run, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    result = run([compose_check, "--env-file", str(dotenv)])
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["services"]["driftline"]["environment"]
    assert {k: env[k] for k in SECRETS} == SECRETS


def test_compose_check_rejects_what_compose_rejects(compose_check, run, env_file, tmp_path: Path) -> None:
    """The loader validates against the Compose schema: a misspelled key fails."""
    root = Path(__file__).resolve().parents[3]
    bad = tmp_path / "docker-compose.yml"
    bad.write_text((root / "docker-compose.yml").read_text().replace("restart: unless-stopped", "restrt: always"))
    result = run([compose_check, "-f", str(bad), "--env-file", env_file], env=SECRETS)
    assert result.returncode == 1
    assert "restrt" in result.stderr


def test_the_service_runs_the_kubernetes_image_with_metrics_and_admin_on_loopback(project, image: str) -> None:
    driftline, topics = project["services"]["driftline"], project["services"]["topics"]
    assert driftline["image"] == topics["image"] == image
    assert driftline["build"]["dockerfile"] == "deploy/Dockerfile"
    command = " ".join(driftline["command"])
    metrics = int(re.search(r"--metrics-port (\d+)", command).group(1))
    admin = int(re.search(r"--admin-port (\d+)", command).group(1))
    published = {p["target"]: (p["host_ip"], p["published"]) for p in driftline["ports"]}
    assert published == {metrics: ("127.0.0.1", str(metrics)), admin: ("127.0.0.1", str(admin))}
    assert driftline["environment"]["DRIFTLINE_ADMIN_TOKEN"] == SECRETS["DRIFTLINE_ADMIN_TOKEN"]
    assert "DRIFTLINE_ADMIN_TOKEN" not in (topics.get("environment") or {})


def _profile(compose_check, run, env_file, name: str) -> dict:
    result = run([compose_check, "--env-file", env_file, "--profile", name], env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_the_scale_out_profiles_are_off_by_default(project) -> None:
    assert not {"worker-0", "worker-1", "trainer", "predictor-0", "predictor-1"} & set(project["services"])


def test_keyed_profile_two_workers_instances_0_and_1_one_broker_one_store(compose_check, run, env_file) -> None:
    services = _profile(compose_check, run, env_file, "keyed")
    workers = {n: s for n, s in services.items() if n.startswith("worker-")}
    assert sorted(workers) == ["worker-0", "worker-1"]
    assert sorted(_flag(s["command"], "--instance") for s in workers.values()) == ["0", "1"]
    stores = {tuple((v["source"], v["target"]) for v in s["volumes"]) for s in workers.values()}
    assert stores == {(("keyed-versions", "/var/lib/driftline/versions"),)}
    for s in workers.values():
        assert s["command"][:2] == ["-c", "/etc/driftline/keyed.toml"]
        assert _flag(s["command"], "--store") == "/var/lib/driftline/versions"
        assert s["environment"]["DRIFTLINE_BOOTSTRAP_SERVERS"] == services["topics-keyed"]["environment"][
            "DRIFTLINE_BOOTSTRAP_SERVERS"] == "kafka:19092"
        assert s["environment"]["DRIFTLINE_SNAPSHOT_KEY"] == SECRETS["DRIFTLINE_SNAPSHOT_KEY"]
        assert s["depends_on"]["topics-keyed"]["condition"] == "service_completed_successfully"
    host_ports = [p["published"] for s in workers.values() for p in s["ports"]]
    assert len(host_ports) == len(set(host_ports)) == 4


def test_global_profile_one_trainer_two_predictors(compose_check, run, env_file) -> None:
    services = _profile(compose_check, run, env_file, "global")
    trainer = services["trainer"]
    predictors = {n: s for n, s in services.items() if n.startswith("predictor-")}
    assert _flag(trainer["command"], "--role") == "trainer" and _flag(trainer["command"], "--instance") is None
    assert sorted(predictors) == ["predictor-0", "predictor-1"]
    assert {_flag(s["command"], "--role") for s in predictors.values()} == {"predictor"}
    assert sorted(_flag(s["command"], "--instance") for s in predictors.values()) == ["0", "1"]
    for s in [trainer, *predictors.values()]:
        assert s["command"][:2] == ["-c", "/etc/driftline/global.toml"]
        assert [v["source"] for v in s["volumes"]] == ["global-versions"]
    host_ports = [p["published"] for s in [trainer, *predictors.values()] for p in s["ports"]]
    assert len(host_ports) == len(set(host_ports)) == 6


def test_the_image_bakes_the_configs_the_profiles_name(deploy_config) -> None:
    root = Path(__file__).resolve().parents[3]
    dockerfile = (root / "deploy" / "Dockerfile").read_text()
    for scale, file in (("keyed", "keyed.toml"), ("global", "global.toml")):
        assert f"deploy_config.py container --scale {scale} --sample driftline.toml > /{file}" in dockerfile
        assert f"/{file}" in dockerfile.split("COPY --from=build /driftline.toml", 1)[1].splitlines()[0]
