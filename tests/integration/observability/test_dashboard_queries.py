"""Debian's Prometheus scraping a real ``driftline run`` on loopback: every query of the
Grafana dashboard returns data, ``promtool check metrics`` accepts the live /metrics, and
the processor's own log lines match docs/schemas/log-line.schema.json.

The stream: SEA with an abrupt concept switch (ADWIN watches the error), per-feature data
drift on, a canary challenger serving 30% of the keys, and one malformed feature record.
Queries that legitimately need events that may not happen in such a short run (a drift
event, a failed snapshot, a paused partition) must be valid but may come back empty: they
are ``NEEDS_EVENTS`` of scripts/grafana_dashboard.py, plus the drift-event annotation. The
dead-letter panel is one of them, yet it must have data here: the test sends a bad record.

Waits are bounded (each poll loop has a deadline) and both servers are stopped at the end.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml
from confluent_kafka import Producer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DRIFTLINE = str(Path(sys.executable).with_name("driftline"))
N_EVENTS = 6000
ALLOWED_EMPTY_ANNOTATIONS = {"Drift events": "a drift event"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/setup.sh installs Debian's prometheus package", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard_module():
    spec = importlib.util.spec_from_file_location("grafana_dashboard", ROOT / "scripts" / "grafana_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback only)
        return answer.read()


def _query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(_get(url))
    except urllib.error.HTTPError as exc:  # 400: a bad query; the body says why
        return json.loads(exc.read())


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _config_toml(path: Path, config) -> Path:
    path.write_text(f'''name = "{config.name}"

[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"

[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = 1000

[processor]
max_idle_ms = 3000

[drift]
detectors = [{{ name = "ADWIN" }}]

[drift.data]
enabled = true
reference_size = 500
window_size = 500
rebase_on_version = false

[[lifecycle.challengers]]
name = "canary"
share = 0.3
''')
    return path


def _fill(expr: str, model: str) -> str:
    """A dashboard query as Grafana sends it for this model."""
    expr = re.sub(r"\$__(rate_)?interval", "1m", expr)
    return expr.replace("$model", model).replace("$variant", ".*")


def test_prometheus_scraping_a_processor_answers_every_dashboard_query(make_config, tmp_path):
    prometheus, promtool = _tool("prometheus"), _tool("promtool")
    config = make_config(create=False)
    toml = str(_config_toml(tmp_path / "deploy.toml", config))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")},
           "DRIFTLINE_SNAPSHOT_KEY": "dashboard-test-key"}
    created = subprocess.run([DRIFTLINE, "-c", toml, "topics", "create"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert created.returncode == 0, created.stderr

    metrics_port, prom_port = _free_port(), _free_port()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"  # the shipped 30 s, shortened for a run of seconds
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [{"job_name": "driftline",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    board = _dashboard_module()
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "driftline.json").read_text())
    queries = {f"panel {title}: {expr}": expr
               for title, exprs in board.panel_queries(dashboard).items() for expr in exprs}
    queries.update({f"annotation {a['name']}: {a['expr']}": a["expr"] for a in dashboard["annotations"]["list"]})
    may_be_empty = {key for key in queries
                    if any(key.startswith(f"panel {t}:") for t in (*board.NEEDS_EVENTS, *board.NEEDS_MODE))
                    or any(key.startswith(f"annotation {n}:") for n in ALLOWED_EMPTY_ANNOTATIONS)}
    must_have_data = (set(queries) - may_be_empty) | {k for k in queries if "Dead letters" in k}

    log_path = tmp_path / "run.log"
    run = prom = None
    try:
        with open(log_path, "w") as log:
            run = subprocess.Popen([DRIFTLINE, "-c", toml, "run", "--metrics-port", str(metrics_port),
                                    "--max-seconds", "300"], stdout=subprocess.DEVNULL, stderr=log, env=env)
        deadline = time.monotonic() + 60
        while '"processing"' not in log_path.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        with open(tmp_path / "prometheus.log", "w") as prom_log:
            prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                    stdout=subprocess.DEVNULL, stderr=prom_log)

        # Produce only once Prometheus scrapes the processor: a version change that happens
        # before its first scrape is no change to it (seen on a loaded machine).
        deadline = time.monotonic() + 60
        while True:
            try:
                up = _query(prom_port, "up")
            except OSError:  # not listening yet
                up = {}
            if any(r["value"][1] == "1" for r in up.get("data", {}).get("result", [])):
                break
            assert prom.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.5)
        produced = subprocess.run([DRIFTLINE, "-c", toml, "produce", "synth:sea", "--limit", str(N_EVENTS),
                                   "--drift-every", "3000", "--noise", "0", "--label-delay", "10"],
                                  capture_output=True, text=True, timeout=180, env=env)
        assert produced.returncode == 0, produced.stderr
        bad = Producer({"bootstrap.servers": config.kafka.bootstrap_servers, "partitioner": "murmur2_random"})
        bad.produce(config.topics.features, key=b"bad-1", value=b"{not json")
        assert bad.flush(30) == 0

        # Poll every query until each returned data once (or the deadline): a query answers
        # for a moment only when it reads a short window (a version change in the last minute).
        answered: dict[str, dict] = {}
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for key, expr in queries.items():
                answer = answered[key] = _query(prom_port, _fill(expr, config.name))
                if answer.get("status") == "success" and answer["data"]["result"]:
                    seen.add(key)
            learned = _query(prom_port, f'driftline_examples_learned{{model="{config.name}"}}')
            done = learned.get("data", {}).get("result") and float(learned["data"]["result"][0]["value"][1]) >= N_EVENTS - 10
            if must_have_data <= seen and done:
                break
            assert run.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)

        failed = {k: a.get("error") for k, a in answered.items() if a.get("status") != "success"}
        assert not failed, f"queries Prometheus refused: {failed}"
        missing = sorted(must_have_data - seen)
        assert not missing, f"queries that never returned data: {missing}"

        # promtool lints the live exposition (names, types, help, units).
        exposition = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert b"driftline_feature_drift_statistic" in exposition and b"driftline_variant_metric" in exposition
        checked = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30)
        assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    finally:
        _stop(run)
        _stop(prom)

    schema = orjson.loads((ROOT / "docs" / "schemas" / "log-line.schema.json").read_bytes())
    entries = [orjson.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert {"processing", "version cut"} <= {e["body"] for e in entries}
    for entry in entries:
        jsonschema.validate(entry, schema, cls=jsonschema.Draft202012Validator)
