"""The event contract end to end: every output kind a small deployment writes on the real
broker, read with read_committed, matches docs/schemas/ (bodies) and the header tables of
docs/events.md (parsed from the doc, so the doc and the code cannot drift apart unseen)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.datasets import stream
from driftline.runtime.clients import make_producer
from driftline.runtime.processor import Processor
from driftline.runtime.replay import encode_features, replay

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[3] / "docs"
SCHEMA_OF = {"predictions": "prediction", "shadow": "prediction", "drift": "drift", "versions": "version",
             "lifecycle": "lifecycle", "audit": "audit"}
# Only on a redacted body ([governance.privacy]; tests/integration/governance/test_privacy.py).
OPTIONAL_DLQ_HEADERS = {"dl_redacted", "dl_instance"}  # dl_instance: a release a predictor refused
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _table(text: str) -> list[list[str]]:
    """The rows (header row first, separator dropped) of the first Markdown table in ``text``."""
    lines = []
    for line in text.lstrip("\n").splitlines():
        if not line.startswith("|"):
            if lines:
                break
            continue
        lines.append(line)
    return [_cells(line) for line in lines if not set(line) <= set("|-: ")]


def _doc() -> str:
    return (DOCS / "events.md").read_text()


def documented_output_headers() -> dict[str, dict[str, str | None]]:
    """topic kind -> header -> value template (None: no such header), from docs/events.md."""
    head, *rows = _table(_doc().split("<!-- table: output headers -->", 1)[1])
    kinds = [c.strip("`.") for c in head[1:]]
    table: dict[str, dict[str, str | None]] = {kind: {} for kind in kinds}
    for row in rows:
        header = row[0].strip("`")
        for kind, cell in zip(kinds, row[1:]):
            if cell != "-":
                table[kind][header] = cell[1:-1] if cell.startswith("`") else cell
    return table


def documented_dlq_headers() -> set[str]:
    section = _doc().split("\n## dlq", 1)[1]
    _, *rows = _table("| Header | Value |" + section.split("| Header | Value |", 1)[1])
    return {row[0].strip("`") for row in rows}


def documented_reasons() -> set[str]:
    section = _doc().split("\n## dlq", 1)[1]
    return set(re.findall(r"^\| `([a-z_]+)` \| (?:both|features|labels) \|", section, re.M))


def ce_time(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def expected_value(template: str, body: dict, model: str) -> str | None:
    """Fill a template of the header table from the body; None: a time the body does not hold."""
    if not template.startswith(("`", "<")) and " " in template:
        return None  # prose, e.g. "the time of announcement"
    value = template.replace("<model>", model)
    for member in re.findall(r"<([a-z_]+)>", value):
        value = value.replace(f"<{member}>", str(body[member]))
    return value


def check_headers(kind: str, headers: dict[str, bytes], body: dict, model: str, table) -> None:
    documented = table[kind]
    assert set(headers) == set(documented), f"{kind}: {sorted(headers)} != {sorted(documented)}"
    for name, template in documented.items():
        actual = headers[name].decode()
        if name == "ce_time":
            assert RFC3339_MS.match(actual), actual
            member = re.fullmatch(r"<([a-z_]+)>", template)
            if member:
                assert actual == ce_time(body[member.group(1)]), (kind, name, actual)
            continue
        expected = expected_value(template, body, model)
        assert expected is None or actual == expected, (kind, name, actual, expected)


def test_the_doc_header_table_covers_every_output_topic():
    table = documented_output_headers()
    assert set(table) == set(SCHEMA_OF)
    assert table["predictions"]["ce_id"] == "<model>/<id>"
    assert all({"ce_specversion", "ce_id", "ce_type", "ce_source"} <= set(h) for h in table.values())  # CloudEvents
    assert documented_dlq_headers() == {"dl_reason", "dl_detail", "dl_topic", "dl_partition", "dl_offset",
                                        "dl_timestamp", *OPTIONAL_DLQ_HEADERS}


def test_every_output_kind_matches_the_documented_contract(make_config, reader, signing_key):
    """A champion, a challenger (shadow predictions, then a promotion on .lifecycle), concept
    drift, versions and dead letters: every committed record is checked against the doc."""
    policy = {"enabled": True, "window": 500, "margin": 0.02, "alpha": 0.01, "patience": 2}
    config = make_config(
        checkpoint={"every_examples": 2000},
        lifecycle={"challengers": [{"name": "hat", "model": {"preset": "hoeffding_adaptive_tree"}}],
                   "promotion": policy},
        drift={"detectors": [{"name": "binary.HDDMA"}, {"name": "ADWIN"}]},
        governance={"explain": {"enabled": True, "top_k": 3}},  # the optional explanation member, checked too
    )
    rows = [(encode_features(x), y) for x, y in stream("synth:agrawal", limit=6000, seed=7, drift_every=2000)]
    replay(config, rows, label_delay=50, n_rows=len(rows))
    producer = make_producer(config)
    now = int(time.time() * 1000)
    producer.produce(config.topics.features, key=b"bad1", value=b'{"id": "bad1", "features": {', timestamp=now)
    producer.produce(config.topics.labels, key=b"bad2", value=b"[1, 2]", timestamp=now)
    producer.flush(10)

    Processor(config, signing_key, registry=CollectorRegistry()).run(exit_when_idle_s=3)

    table, model = documented_output_headers(), config.name
    seen = {}
    for kind, schema_name in SCHEMA_OF.items():
        schema = json.loads((DOCS / "schemas" / f"{schema_name}.schema.json").read_text())
        validator = jsonschema.Draft202012Validator(schema)
        messages = reader(config, getattr(config.topics, kind))
        seen[kind] = len(messages)
        for message in messages:
            body = orjson.loads(message.value())
            validator.validate(body)
            check_headers(kind, dict(message.headers()), body, model, table)
            key = message.key().decode()
            assert key == (str(body["version"]) if kind == "versions" else body["id"])
    assert all(seen.values()), seen  # every output kind was written and checked
    assert seen["predictions"] == len(rows)

    dead = reader(config, config.topics.dlq)
    assert {m.key() for m in dead} == {b"bad1", b"bad2"}
    reasons = documented_reasons()
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        assert set(headers) == documented_dlq_headers() - OPTIONAL_DLQ_HEADERS  # no privacy policy here
        assert headers["dl_reason"] in reasons and headers["dl_reason"] in ("malformed_json", "malformed_event")
        assert headers["dl_topic"] in (config.topics.features, config.topics.labels)
        assert int(headers["dl_partition"]) == 0 and int(headers["dl_offset"]) >= 0
        assert int(headers["dl_timestamp"]) == now
        assert message.value() in (b'{"id": "bad1", "features": {', b"[1, 2]")  # the original bytes


def _global_helpers():
    """tests/integration/runtime/test_global.py, for its deployment helpers (no test packages)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("global_helpers", Path(__file__).with_name("test_global.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_global_mode_outputs_match_the_documented_contract(spawn, make_config, reader, tmp_path, signing_key):
    """A trainer and two predictors: every release and heartbeat on .versions, every
    prediction and every dead letter matches docs/schemas/ and the headers of docs/events.md."""
    g = _global_helpers()
    g.N_EVENTS = 1_000  # this copy of the module only: 4 releases, a short run
    config = g._deployment(make_config)
    # no comparison with River here: a partition may count as idle after 2 s (not 20), a shorter run
    config = config.model_copy(update={"processor": config.processor.model_copy(update={"max_idle_ms": 2_000})})
    g._produce(config)
    producer = make_producer(config)
    # inside the stream's event time (base + 1 is no other record's), so no partition waits on it
    producer.produce(config.topics.features, key=b"bad1", value=b'{"id": "bad1", "features": {',
                     timestamp=g.BASE + 1)
    assert producer.flush(10) == 0
    g._run(spawn, config, tmp_path, signing_key, 2)

    table, model = documented_output_headers(), config.name
    release = {**table["versions"], "ce_id": "<model>/global/v<version>", "ce_time": "<created_at>"}
    heartbeat = {**release, "ce_id": "<model>/heartbeat/<watermark>", "ce_type": "io.driftline.heartbeat"}
    tables = {"predictions": table["predictions"], "release": release, "heartbeat": heartbeat}
    validate = {kind: jsonschema.Draft202012Validator(json.loads((DOCS / "schemas" / f"{name}.schema.json")
                                                                 .read_text())).validate
                for kind, name in (("predictions", "prediction"), ("versions", "version"))}
    seen = {"release": 0, "heartbeat": 0, "predictions": 0}
    for topic in ("versions", "predictions"):
        for message in reader(config, getattr(config.topics, topic)):
            body = orjson.loads(message.value())
            validate[topic](body)
            kind = topic if topic == "predictions" else "heartbeat" if body.get("heartbeat") else "release"
            check_headers(kind, dict(message.headers()), body, model, tables)
            key = body["id"] if kind == "predictions" else "heartbeat" if kind == "heartbeat" else str(body["version"])
            assert message.key().decode() == key
            seen[kind] += 1
    assert seen == {"release": g.N_EVENTS // g.EVERY, "heartbeat": seen["heartbeat"] or 1,
                    "predictions": g.N_EVENTS}, seen
    dead = reader(config, config.topics.dlq)
    assert [m.key() for m in dead] == [b"bad1"]
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers()}
        assert set(headers) == documented_dlq_headers() - OPTIONAL_DLQ_HEADERS
        assert headers["dl_reason"] == "malformed_json" and headers["dl_reason"] in documented_reasons()
    # the typed client tells the three bodies of .versions apart
    from driftline.client import GlobalRelease, Heartbeat, Reader

    with Reader(config, "versions") as typed:
        kinds = [type(r.value) for r in typed.records(idle_timeout=5)]
    assert kinds.count(GlobalRelease) == seen["release"] and kinds.count(Heartbeat) == seen["heartbeat"], kinds
    # a registry rebuilt from the topics indexes the trainer's recovery versions, not its releases
    from driftline.lifecycle.registry import Registry
    from driftline.runtime.rebuild import rebuild_registry

    rebuilt = rebuild_registry(config, Registry(str(tmp_path / "rebuilt.sqlite")))
    assert rebuilt.versions == 0 and rebuilt.task_versions >= 1, rebuilt
