"""Scenario 6: a secured cluster (SASL_SSL), wrong credentials, and no secret in any log.

The module starts its own broker with scripts/kafka.sh: PLAINTEXT on ``FAULTS_SECURED_PORT``
(default 29592) and a SASL_SSL listener on the next port (PLAIN and SCRAM-SHA-512), with a
CA and server keystore generated into a temporary directory at test time (deleted at the
end, with the broker's data: ``stop --clean``). Everything the tests do goes through the
SASL_SSL listener, the password only ever in ``DRIFTLINE_SASL_PASSWORD``.

1. topics created, a stream produced, the real processor run (``--log-level DEBUG``) and
   the shared invariants checked; ``tail`` and ``models list`` at DEBUG too;
2. a wrong password (SCRAM-SHA-512 and PLAIN) makes ``driftline run`` and ``topics create``
   exit non-zero with "authentication failed for user ... at bootstrap ...";
3. every captured stdout/stderr, processor log, TOML file and the broker's server.log is
   scanned for the SASL passwords (right and wrong) and the snapshot signing key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.datasets import stream
from driftline.runtime.replay import encode_features, replay
from driftline.runtime.topics import cluster_metadata

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
# Below the ephemeral port range, like test_broker_restart's broker (see there).
PORT = int(os.environ.get("FAULTS_SECURED_PORT", "29592"))
SASL_PORT = PORT + 1
USER = "alice"
# A fresh credential per run (it is a secret, not a test input: nothing depends on its value).
PASSWORD = "dl-" + secrets.token_hex(16)
WRONG = "dl-wrong-" + secrets.token_hex(8)
N_EVENTS = 3_000
DELAY = 50
FAIL_FAST_BOUND_S = 60  # a bound on the subprocess, not a timing assertion

_captured: list[tuple[str, str]] = []  # (what, text) of every run of this module


def _kafka(env: dict[str, str], command: str, *args: str) -> None:
    subprocess.run([str(KAFKA_SH), command, *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=180)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    ssl_dir = tmp_path_factory.mktemp("kafka-ssl")
    env = {**os.environ, "KAFKA_PORT": str(PORT), "KAFKA_SASL_SSL_PORT": str(SASL_PORT),
           "KAFKA_SSL_DIR": str(ssl_dir), "KAFKA_SASL_USERS": f"{USER}:{PASSWORD}", "KAFKA_HEAP": "512m"}
    # A leftover broker from an aborted run would have other credentials.
    _kafka(env, "stop", "--clean")
    try:
        _kafka(env, "start")
        yield {"bootstrap": f"127.0.0.1:{SASL_PORT}", "ca": str(ssl_dir / "ca.crt"),
               "server_log": ROOT / ".cache" / "kafka-data" / str(PORT) / "server.log"}
    finally:
        _kafka(env, "stop", "--clean")
        shutil.rmtree(ssl_dir, ignore_errors=True)  # the CA and server keys


def _kafka_settings(secured, mechanism: str, password: str | None) -> dict:
    settings = {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism, "sasl_username": USER,
                "ssl_ca_location": secured["ca"]}
    if password is not None:
        settings["sasl_password"] = password
    return settings


def _cli(harness, toml: Path, *args: str, password: str, signing_key: bytes,
         timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRIFTLINE_SASL_PASSWORD": password, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    env.pop("DRIFTLINE_BOOTSTRAP_SERVERS", None)
    proc = subprocess.run([sys.executable, "-m", "driftline.cli", "--log-level", "DEBUG", "-c", str(toml), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)
    _captured.append((f"driftline {' '.join(args)}", proc.stdout + proc.stderr))
    return proc


def _assert_no_secrets(texts: list[tuple[str, str]], signing_key: bytes) -> None:
    forbidden = {"SASL password": PASSWORD, "wrong SASL password": WRONG, "snapshot key": signing_key.decode()}
    for what, text in texts:
        for name, secret in forbidden.items():
            assert secret not in text, f"the {name} appears in {what}"


def test_processor_over_sasl_ssl(secured, harness, invariants, signing_key, tmp_path):
    config = harness.new_config(secured["bootstrap"], tmp_path / "versions",
                                kafka=_kafka_settings(secured, "SCRAM-SHA-512", PASSWORD),
                                checkpoint={"every_examples": 1_000})  # topics created over SASL_SSL
    assert cluster_metadata(config).topics  # the SASL_SSL listener answers
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=N_EVENTS, seed=6)]
    assert replay(config, rows, label_delay=DELAY, n_rows=N_EVENTS) == N_EVENTS

    # The processor subprocess gets the password only from the environment.
    runner = harness.ProcessorRunner(config, tmp_path, signing_key, env={"DRIFTLINE_SASL_PASSWORD": PASSWORD})
    runner.env.pop("DRIFTLINE_BOOTSTRAP_SERVERS", None)
    runner.command = lambda *args: [sys.executable, "-m", "driftline.cli", "--log-level", "DEBUG",
                                    "-c", str(runner.toml), "run", *args]
    toml_text = runner.toml.read_text()
    assert 'security_protocol = "SASL_SSL"' in toml_text and PASSWORD not in toml_text
    done = runner.run("--exit-when-idle", "5")
    log = runner.log_text()
    _captured.extend([("processor log", log), ("deployment TOML", toml_text)])
    assert done.returncode == 0, log[-3000:]
    assert '"processing"' in log

    figures = invariants(config, signing_key, predicted=(f"e{i}" for i in range(N_EVENTS)), learned=N_EVENTS)

    tail = _cli(harness, runner.toml, "tail", "predictions", "--from-beginning", "--max", "1", "--timeout", "30",
                password=PASSWORD, signing_key=signing_key)
    assert tail.returncode == 0 and "e0" in tail.stdout, tail.stdout + tail.stderr[-2000:]
    listing = _cli(harness, runner.toml, "models", "list", password=PASSWORD, signing_key=signing_key)
    assert listing.returncode == 0 and str(figures["version"]) in listing.stdout, listing.stdout + listing.stderr
    _assert_no_secrets(_captured, signing_key)
    harness.report("secured_cluster", mechanism="SCRAM-SHA-512", events=N_EVENTS, labels=N_EVENTS,
                   runs=runner.runs, lost=0, duplicated=0, **figures)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_fails_fast(secured, harness, signing_key, tmp_path, mechanism):
    # Topics exist (created with the right password), so only the credentials are wrong.
    config = harness.new_config(secured["bootstrap"], tmp_path / "versions",
                                kafka=_kafka_settings(secured, mechanism, PASSWORD))
    # librdkafka's full debug output too: its config dump must redact sasl.password.
    config = config.model_copy(update={"kafka": config.kafka.model_copy(update={"extra": {"debug": "security,conf"}})})
    toml = harness.write_toml(config, tmp_path / "wrong.toml")
    assert PASSWORD not in toml.read_text()
    expected = f"authentication failed for user '{USER}' at bootstrap {secured['bootstrap']}"
    for command in (["run", "--exit-when-idle", "5"], ["topics", "create"]):
        proc = _cli(harness, toml, *command, password=WRONG, signing_key=signing_key, timeout=FAIL_FAST_BOUND_S)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, output[-3000:]
        assert expected in output, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
    _assert_no_secrets(_captured, signing_key)


def test_no_secret_in_any_log(secured, signing_key):
    """Everything this module captured, plus the broker's log so far."""
    texts = [*_captured, ("broker server.log", Path(secured["server_log"]).read_text(errors="replace"))]
    assert any("authentication failed" in text.lower() for _, text in texts), "no failed login was captured"
    _assert_no_secrets(texts, signing_key)
