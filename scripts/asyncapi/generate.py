"""Write docs/asyncapi.json, the AsyncAPI 3.0 document of every topic of a deployment.

Generated, never edited: the channel addresses and topic settings come from the code
(``driftline.config.TopicNames``, ``driftline.runtime.topics.topic_specs``), the payloads
from ``docs/schemas/`` and the headers from the tables of ``docs/events.md`` (which
tests/integration/runtime/test_contract.py checks against what the processor writes).
``--check`` exits non-zero when the checked-in document differs from a fresh one;
tests/unit/docs/test_asyncapi.py runs it and the AsyncAPI parser on the result.

    .venv/bin/python scripts/asyncapi/generate.py          # rewrite docs/asyncapi.json
    .venv/bin/python scripts/asyncapi/generate.py --check  # fail if it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from driftline import __version__
from driftline.config import DeploymentConfig, TopicNames
from driftline.runtime.topics import topic_specs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OUT = DOCS / "asyncapi.json"

# Topic kind -> (payload schema in docs/schemas, who writes it, key, summary).
TOPICS: dict[str, tuple[str | None, str, str, str]] = {
    "features": ("features", "producers", "The event id (UTF-8), equal to the body's id; in keyed mode the entity key.",
                 "Feature events to predict on; the record timestamp is the event time."),
    "labels": ("labels", "producers", "The event id (UTF-8), equal to the body's id; in keyed mode the entity key.",
               "The ground truth of an event; the record timestamp is when it became known."),
    "protected": ("protected", "producers", "The event id (UTF-8), equal to the body's id; in keyed mode the entity key.",
                  "Protected attributes of an event, for fairness by group only; never seen by the model."),
    "predictions": ("prediction", "driftline", "The event id (UTF-8).",
                    "One prediction per accepted feature event, stamped with the model version."),
    "drift": ("drift", "driftline", "The drift event id (UTF-8).",
              "Concept, data and performance drift, with evidence and the action taken."),
    "versions": ("version", "driftline",
                 "The version number as a decimal UTF-8 string; \"heartbeat\" for a global-mode heartbeat.",
                 "Model version announcements (compacted: the latest record per version); in global mode the "
                 "trainer's releases and heartbeats (ce_type io.driftline.heartbeat)."),
    "dlq": (None, "driftline", "The original record's key (possibly null).",
            "Input records Driftline could not use: the original bytes, the reason in headers."),
    "shadow": ("prediction", "driftline", "The event id (UTF-8).",
               "Predictions of the variants that did not serve an event (challengers)."),
    "lifecycle": ("lifecycle", "driftline", "The lifecycle event id (UTF-8).",
                  "The audit trail: promotions, rollbacks, alias moves, resets, deletions."),
    "order": (None, "driftline", "None.",
              "Internal: the processor's merge decisions, which recovery repeats. Not an interface."),
    "checkpoints": (None, "driftline", "The task (partition index) as a decimal UTF-8 string.",
                    "Internal, keyed mode: a pointer per task to its latest version (compacted)."),
    "audit": ("audit", "driftline", "The entry id, audit-<seq> (UTF-8).",
              "The hash-chained, signed audit log: one entry per lifecycle event."),
}


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _table_after(marker: str, text: str) -> list[list[str]]:
    """The rows (header row first) of the first Markdown table after ``marker``."""
    lines: list[str] = []
    for line in text.split(marker, 1)[1].lstrip("\n").splitlines():
        if not line.startswith("|"):
            if lines:
                break
            continue
        lines.append(line)
    return [_cells(line) for line in lines if not set(line) <= set("|-: ")]


def output_headers(events_md: str) -> dict[str, dict[str, str]]:
    """topic kind -> header -> value template, from the output headers table of docs/events.md."""
    head, *rows = _table_after("<!-- table: output headers -->", events_md)
    kinds = [c.strip("`.") for c in head[1:]]
    table: dict[str, dict[str, str]] = {kind: {} for kind in kinds}
    for row in rows:
        for kind, cell in zip(kinds, row[1:]):
            if cell != "-":
                table[kind][row[0].strip("`")] = cell.strip("`")
    return table


def dlq_headers(events_md: str) -> dict[str, str]:
    """header -> meaning, from the dead-letter headers table of docs/events.md."""
    rows = _table_after("- **Headers** (the original record's headers are not copied):", events_md)
    return {row[0].strip("`"): row[1] for row in rows[1:]}


def _payload(name: str) -> dict[str, Any]:
    """docs/schemas/<name>.schema.json as an AsyncAPI component: its ``$defs`` references made
    absolute within the document (``#/components/schemas/<name>/$defs/...``)."""
    schema = json.loads((DOCS / "schemas" / f"{name}.schema.json").read_text())
    schema.pop("$schema", None)
    schema.pop("$id", None)
    text = json.dumps(schema).replace('"#/$defs/', f'"#/components/schemas/{name}/$defs/')
    return json.loads(text)


def _headers_schema(headers: dict[str, str], templates: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(headers),
        "properties": {
            h: {"type": "string", "description": (f"Value: {v}" if templates else v)} for h, v in headers.items()
        },
    }


def build() -> dict[str, Any]:
    events_md = (DOCS / "events.md").read_text()
    headers = output_headers(events_md)
    names = TopicNames(prefix="{prefix}", model="{model}").all()
    specs = {spec.topic: spec for spec in topic_specs(DeploymentConfig(name="model"))}
    sample = DeploymentConfig(name="model").topics.all()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for kind, (schema, writer, key, summary) in TOPICS.items():
        spec = specs[sample[kind]]
        message: dict[str, Any] = {
            "name": kind,
            "title": f"{kind} record",
            "summary": summary,
            "bindings": {"kafka": {"key": {"type": "string", "description": key}, "bindingVersion": "0.5.0"}},
        }
        if schema is not None:
            schemas.setdefault(schema, _payload(schema))
            message["contentType"] = "application/json"
            message["payload"] = {"$ref": f"#/components/schemas/{schema}"}
        elif kind == "dlq":
            message["contentType"] = "application/octet-stream"
            message["payload"] = {"description": "The original record's bytes, unchanged (empty for a null value)."}
        else:
            message["contentType"] = "application/json"
            message["payload"] = {"type": "object", "description": "Internal JSON; may change without notice."}
        if kind in headers:
            message["headers"] = _headers_schema(headers[kind], templates=True)
        elif kind == "dlq":
            message["headers"] = _headers_schema(dlq_headers(events_md), templates=False)
        messages[kind] = message
        config = {k: v for k, v in spec.config.items() if k in ("cleanup.policy", "retention.ms", "max.message.bytes")}
        topic_configuration: dict[str, Any] = {"cleanup.policy": [config.get("cleanup.policy", "delete")]}
        if "retention.ms" in config:
            topic_configuration["retention.ms"] = int(config["retention.ms"])
        if "max.message.bytes" in config:
            topic_configuration["max.message.bytes"] = int(config["max.message.bytes"])
        channels[kind] = {
            "address": names[kind],
            "title": kind,
            "summary": summary,
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"},
                           "model": {"$ref": "#/components/parameters/model"}},
            "messages": {kind: {"$ref": f"#/components/messages/{kind}"}},
            "bindings": {"kafka": {"topicConfiguration": topic_configuration, "bindingVersion": "0.5.0"}},
        }
        action = "send" if writer == "producers" else "receive"
        operations[f"{action}{kind.capitalize()}"] = {
            "action": action,
            "title": f"{'Publish' if action == 'send' else 'Consume'} {kind}",
            "summary": ("Your producers write it (key = event id, partitioner murmur2_random, timestamp = event time)."
                        if action == "send" else
                        "Driftline writes it; read with isolation.level=read_committed."),
            "channel": {"$ref": f"#/channels/{kind}"},
            "messages": [{"$ref": f"#/channels/{kind}/messages/{kind}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Driftline",
            "version": __version__,
            "description": ("The Kafka topics of one Driftline deployment, from the point of view of the "
                            "applications around it: producers send features and labels (and protected "
                            "attributes for fairness), consumers receive the rest. Generated by scripts/asyncapi/generate.py from the code's topic names "
                            "and settings, docs/schemas/ and the header tables of docs/events.md."),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                      "description": "A local broker (scripts/kafka.sh start); set your deployment's bootstrap servers."},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "prefix": {"default": "driftline", "description": "The deployment's topic_prefix."},
                "model": {"description": "The deployment name (name in its TOML)."},
            },
            "messages": messages,
            "schemas": schemas,
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run scripts/asyncapi/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
