"""The newcomer walk: README.md's "Using it" commands, as written, on the test broker; then
the demo's "Explore" commands, as it prints them.

The commands are read from the README's code block, so the README cannot drift from
what is tested. A new user on a broker elsewhere adds the global option
``--bootstrap host:port`` (the README says so); the walk also gives its own ``--name`` and
``--store`` so that it never meets another deployment's topics or versions. Beyond that
it changes only what the README itself offers: ``run`` gets ``--exit-when-idle 5`` and a
free metrics port, ``produce`` a ``--limit`` (CI time). Every command must exit 0 and
print what the README promises.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROGRAM = ".venv/bin/driftline"
LIMIT = 3000


def readme_commands() -> list[str]:
    """The lines of the first ``bash`` block under "## Using it", comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: no bash block under 'Using it'"
    lines = [line.split("  #", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def walk(bootstrap, tmp_path):
    name = f"walk-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    globals_ = f"--bootstrap {shlex.quote(bootstrap)} --name {name} --store {shlex.quote(str(tmp_path / 'versions'))}"

    def localize(line: str) -> str:
        assert line.startswith("export ") or line.startswith(PROGRAM + " "), line
        return line.replace(PROGRAM + " ", f"{PROGRAM} {globals_} ", 1)

    def sh(line: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)

    return name, env, localize, sh


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def test_readme_using_it_commands_work_as_written(walk):
    name, env, localize, sh = walk
    commands = readme_commands()
    verbs = [next((w for w in c.split() if w in ("topics", "run", "produce", "tail", "models")), "export")
             for c in commands]
    assert verbs == ["export", "topics", "run", "produce", "tail", "models", "models"], commands
    export, create, run, produce, tail, listing, history = commands

    key = export.split("=", 1)[0].removeprefix("export ")
    value = _ok(sh(f'{export}\nprintf %s "${key}"'))
    assert len(value) == 64, value  # openssl rand -hex 32
    env[key] = value

    assert f"driftline.{name}.features" in _ok(sh(localize(create)))

    metrics_port = _free_port()
    assert "--metrics-port 8000" in run
    run_line = localize(run).replace("--metrics-port 8000", f"--metrics-port {metrics_port}") + " --exit-when-idle 5"
    runner = subprocess.Popen(["bash", "-c", run_line], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        produced = _ok(sh(localize(produce) + f" --limit {LIMIT}"))
        assert f"produced {LIMIT} events and {LIMIT} labels" in produced, produced
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as response:
            assert "driftline_" in response.read().decode()  # "Prometheus metrics are served on /metrics"
        out, err = runner.communicate(timeout=300)
    finally:
        runner.kill()
    assert runner.returncode == 0, (out, err)
    assert f'"examples_learned": {LIMIT}' in out, out

    # tail, after the processor wrote everything: the last 10 records, readable, then it exits
    shown = _ok(sh(localize(tail)))
    records = [block for block in shown.split("\n\n") if block.strip()]
    assert len(records) == 10, shown
    assert all("time=" in r and not r.lstrip().startswith("{") for r in records), shown

    versions = _ok(sh(localize(listing)))
    header, _rule, *rows = versions.splitlines()
    assert header.split()[:3] == ["version", "parent", "trigger"] and rows, versions
    assert "champion" in rows[-1], versions  # the alias names what serves: the newest version

    served = _ok(sh(localize(history)))
    newest = rows[-1].split()[0]
    assert f"version {newest}" in served and "e12" in served, served


def test_the_demo_explore_commands_work_as_printed(walk, tmp_path):
    name, env, localize, sh = walk
    env["DRIFTLINE_SNAPSHOT_KEY"] = "walk-demo-key-0123456789"
    demo = _ok(sh(localize(f"{PROGRAM} --preset hoeffding_tree --log-level WARNING -c deploy/demo.toml demo")
                  + " --events 2000 --drift-every 1000 --rate 4000", timeout=300))
    explore = demo.split("\nExplore:\n", 1)[1].splitlines()
    commands = [line.strip() for line in explore if line.startswith("  ")]
    assert len(commands) == 4 and all(c.startswith(PROGRAM + " --bootstrap ") for c in commands), demo
    assert commands[3].endswith(" report -o report.html"), commands[3]
    report = ROOT / "report.html"
    existed = report.exists()
    try:
        drift, predictions, listing, _ = (_ok(sh(c)) for c in commands)
        assert report.read_text().lstrip().lower().startswith("<!doctype html"), "the report is not HTML"
    finally:
        if not existed:
            report.unlink(missing_ok=True)  # written where the demo said: the repository root
    assert drift.strip() and predictions.strip(), (drift, predictions)
    assert len([b for b in predictions.split("\n\n") if b.strip()]) == 5, predictions
    assert listing.splitlines()[0].split()[:3] == ["version", "parent", "trigger"], listing
