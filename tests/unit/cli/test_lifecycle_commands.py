"""The `models` commands' answers that need no broker."""

from __future__ import annotations

from click.testing import CliRunner

from driftline.cli import main


def test_a_keyed_deployment_refuses_the_embedded_mode_and_names_the_fix(tmp_path, monkeypatch):
    """An embedded worker would join the group and take tasks over: say so, in one line."""
    monkeypatch.delenv("DRIFTLINE_ADMIN_URL", raising=False)
    toml = tmp_path / "keyed.toml"
    toml.write_text('name = "shop"\n[scale]\nmode = "keyed"\n')
    for args in (["models", "reset", "--key", "k1"], ["models", "rollback", "--key", "k1", "--to", "3"]):
        done = CliRunner().invoke(main, ["-c", str(toml), *args])
        assert done.exit_code == 1, done.output
        assert done.output.strip().splitlines() == [
            "Error: keyed mode: send the command to the running worker that holds the key, with --admin-url "
            "(or DRIFTLINE_ADMIN_URL)"]
