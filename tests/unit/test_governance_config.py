"""[governance]: explanations off by default; the audit log kept at least six months."""

from __future__ import annotations

import pytest

from driftline.config import DeploymentConfig, load_config
from driftline.exceptions import ConfigError

SIX_MONTHS_MS = 182 * 24 * 3600 * 1000


def test_defaults():
    cfg = DeploymentConfig(name="credit")
    assert cfg.governance.explain.enabled is False and cfg.governance.explain.top_k == 5
    assert cfg.governance.audit.enabled and cfg.governance.audit.retention_ms >= SIX_MONTHS_MS
    assert cfg.topics.audit == "driftline.credit.audit" and cfg.topics.all()["audit"] == cfg.topics.audit


def test_toml_and_validation(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('name = "credit"\n[governance.explain]\nenabled = true\ntop_k = 3\n'
                    '[governance.audit]\nretention_ms = 1000\n')
    cfg = load_config(path)
    assert cfg.governance.explain.top_k == 3 and cfg.governance.audit.retention_ms == 1000
    with pytest.raises(ConfigError):
        load_config(name="c", governance={"explain": {"top_k": 0}})
    with pytest.raises(ConfigError):
        load_config(name="c", governance={"explain": {"unknown": 1}})
