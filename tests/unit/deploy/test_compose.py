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
