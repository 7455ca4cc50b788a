"""The `models` commands' answers that need no broker."""

from __future__ import annotations

from click.testing import CliRunner

from driftline.cli import main


def test_a_keyed_command_without_a_key_says_how_to_send_it(tmp_path, monkeypatch):
    """An embedded worker would join the group and take tasks over: a keyed command goes to
    the worker that holds its key, so without one it cannot go anywhere. One line, the fix."""
    monkeypatch.delenv("DRIFTLINE_ADMIN_URL", raising=False)
    toml = tmp_path / "keyed.toml"
    toml.write_text('name = "shop"\n[scale]\nmode = "keyed"\n')
    for args in (["models", "reset"], ["models", "rollback", "--to", "3"]):
        done = CliRunner().invoke(main, ["-c", str(toml), *args])
        assert done.exit_code == 1, done.output
        assert done.output.strip().splitlines() == [
            "Error: keyed mode: name the key (--key), or send the command to a worker with --admin-url "
            "(or DRIFTLINE_ADMIN_URL)"], args

    done = CliRunner().invoke(main, ["-c", str(toml), "models", "promote", "--version", "2"])
    assert done.exit_code == 1 and done.output.strip().splitlines() == [
        "Error: keyed mode: alias is not available; a key's model can be reset, rolled back or erased (with --key)"]
