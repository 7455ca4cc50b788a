"""Every version a real run cut has a card that validates against Model Card Toolkit v0.0.2."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from driftline.cli import main
from driftline.datasets import stream
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay
from driftline.versions.store import VersionStore

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "model-card-toolkit" / "v0.0.2"
                     / "model_card.schema.json").read_text())


def test_every_version_has_a_valid_card(make_config, signing_key):
    config = make_config(checkpoint={"every_examples": 1000}, governance={"explain": {"enabled": True}})
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=3000, seed=5)]
    replay(config, rows, label_delay=50, n_rows=len(rows))
    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)
    versions = VersionStore(config.checkpoint.store_url, config.name, signing_key).versions()
    assert len(versions) >= 3
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    base = ["--name", config.name, "--bootstrap", config.kafka.bootstrap_servers, "--store", config.checkpoint.store_url,
            "models", "card"]
    for version in versions:
        result = CliRunner().invoke(main, [*base, str(version)])
        assert result.exit_code == 0, result.output
        card = json.loads(result.output)
        validator.validate(card)
        assert card["model_details"]["version"]["name"] == str(version)
        assert any(d["name"] == config.topics.labels for d in card["model_parameters"]["data"]) or version == 1
    page = CliRunner().invoke(main, [*base, str(versions[-1]), "--markdown"])
    assert page.exit_code == 0 and "## Data provenance" in page.output and "## Pre-determined change plan" in page.output
    missing = CliRunner().invoke(main, [*base, "999"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
