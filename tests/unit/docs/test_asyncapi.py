"""docs/asyncapi.json is what scripts/asyncapi/generate.py makes from the code and the
schemas, and the AsyncAPI parser (installed by scripts/setup.sh) finds no error in it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from driftline.config import TopicNames

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "asyncapi.json"
NODE_MODULES = ROOT / ".cache" / "asyncapi" / "node_modules"


def test_the_document_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "asyncapi" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_asyncapi_parser_validates_it():
    assert shutil.which("node"), "node is not installed: run scripts/setup.sh"
    assert (NODE_MODULES / "@asyncapi" / "parser").is_dir(), "the AsyncAPI parser is not installed: run scripts/setup.sh"
    result = subprocess.run(["node", str(ROOT / "scripts" / "asyncapi" / "validate.mjs"), str(DOC)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ASYNCAPI_NODE_MODULES": str(NODE_MODULES)})
    assert result.returncode == 0, result.stdout + result.stderr
    n = len(json.loads(DOC.read_text())["channels"])  # one per topic: test_every_topic_is_a_channel...
    assert f"valid AsyncAPI 3.0.0 ({n} channels, {n} operations" in result.stdout


def test_every_topic_is_a_channel_with_its_schema():
    doc = json.loads(DOC.read_text())
    topics = TopicNames(prefix="{prefix}", model="{model}").all()
    assert {kind: c["address"] for kind, c in doc["channels"].items()} == topics
    for name in ("features", "labels", "prediction", "drift", "version", "lifecycle"):
        schema = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text())
        del schema["$schema"], schema["$id"]
        component = json.dumps(doc["components"]["schemas"][name]).replace(
            f'"#/components/schemas/{name}/$defs/', '"#/$defs/')
        assert json.loads(component) == schema
    predictions = doc["components"]["messages"]["predictions"]
    assert predictions["headers"]["properties"]["ce_id"]["description"] == "Value: <model>/<id>"
    assert doc["operations"]["sendFeatures"]["action"] == "send"
    assert doc["operations"]["receivePredictions"]["action"] == "receive"
