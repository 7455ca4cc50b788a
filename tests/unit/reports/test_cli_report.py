"""``driftline report``: writes the HTML of a stored version; a missing one is one line, exit 1."""

from __future__ import annotations

from click.testing import CliRunner

from driftline.cli import main
from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.versions.store import VersionStore


def test_report_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", "report-test-key-0123456789")
    store = VersionStore(str(tmp_path / "v"), "m", key=b"report-test-key-0123456789")
    for v in (1, 2):
        store.save(v, {"parent": v - 1 or None, "trigger": "periodic", "examples_seen": 0, "created_at": v},
                   {"engine": Engine(DeploymentConfig(name="m")), "positions": {}})
    args = ["--name", "m", "--store", str(tmp_path / "v"), "report"]
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0 and "version 2" in result.output
    assert "m, version 2" in out.read_text()
    result = CliRunner().invoke(main, [*args, "--version", "1", "-o", str(out)])
    assert result.exit_code == 0 and "m, version 1" in out.read_text()
    result = CliRunner().invoke(main, [*args, "--version", "7", "-o", str(out)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no version 7" in result.output
