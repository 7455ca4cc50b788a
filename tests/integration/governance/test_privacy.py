"""The privacy field policy on the real broker: a canary planted in a ``drop`` and in an
``hmac`` field (and in a dropped body member) never appears in any topic the deployment
writes (dead letters included), any log line of the processor, any file of the version store
or the model card; HMAC pseudonyms are stable under one key and change, with a visible key
id, when the key rotates.

The input topics (.features, .labels) hold what the producer sent and are not Driftline's
to rewrite: they are the only topics left out of the scan.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from driftline.runtime.clients import make_producer

pytestmark = pytest.mark.integration

CANARY = "CNRY-5d1e0b7aa9"
KEY_A = "privacy-integration-key-AAAA"
KEY_B = "privacy-integration-key-BBBB"


def _pseudonym(key: str, value: str) -> str:
    """The documented form, computed with the standard library (the oracle)."""
    kid = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"hmac:{kid}:" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def _toml(config, path: Path) -> None:
    path.write_text(f"""
name = "{config.name}"
[kafka]
bootstrap_servers = "{config.kafka.bootstrap_servers}"
[model]
preset = "logistic_regression"
features = {{ x = "num", ssn = "cat" }}
[drift]
policy = "none"
[checkpoint]
store_url = "{config.checkpoint.store_url}"
every_examples = 50
[processor]
commit_interval_ms = 50
[governance.privacy]
features = {{ ssn = "hmac", name = "drop" }}
body = {{ note = "drop" }}
""")


def _send(config, records: list[tuple[str, bytes]]) -> None:
    producer = make_producer(config)
    for topic, value in records:
        producer.produce(topic, value=value, key=None)
    producer.flush(30)


def _run(toml: Path, key: str, signing_key: bytes) -> subprocess.CompletedProcess:
    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode(), "DRIFTLINE_PRIVACY_KEY": key}
    return subprocess.run([sys.executable, "-m", "driftline.cli", "-c", str(toml), "--log-level", "DEBUG", "run",
                           "--exit-when-idle", "4"], env=env, capture_output=True, text=True, timeout=300)


def _events(config, start: int, n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(start, start + n):
        body = {"id": f"e{i}", "features": {"x": float(i % 5), "ssn": CANARY, "name": CANARY}, "note": CANARY}
        out.append((config.topics.features, orjson.dumps(body)))
        out.append((config.topics.labels, orjson.dumps({"id": f"e{i}", "label": i % 2 == 0})))
    return out


def _bad(config, tag: str) -> list[tuple[str, bytes]]:
    """A mistyped feature (redacted body on .dlq) and a body that is not JSON (withheld)."""
    mistyped = {"id": f"bad-{tag}", "features": {"x": "oops", "ssn": CANARY, "name": CANARY}, "note": CANARY}
    return [(config.topics.features, orjson.dumps(mistyped)),
            (config.topics.features, b'{"id": "torn-' + tag.encode() + b'", "features": {"name": "' + CANARY.encode())]


def test_a_canary_in_drop_and_hmac_fields_leaves_no_trace(make_config, reader, signing_key, tmp_path):
    config = make_config()
    toml = tmp_path / "deployment.toml"
    _toml(config, toml)
    _send(config, _events(config, 0, 120) + _bad(config, "a") + _events(config, 120, 10) + _bad(config, "a2"))
    first = _run(toml, KEY_A, signing_key)
    assert first.returncode == 0, first.stderr[-2000:]
    _send(config, _bad(config, "b") + _events(config, 130, 60))
    second = _run(toml, KEY_B, signing_key)  # the key rotated between the runs
    assert second.returncode == 0, second.stderr[-2000:]

    # Dead letters: redacted bodies, the pseudonym under the key of the run that wrote them.
    dlq = [(m.value(), dict(m.headers() or [])) for m in reader(config, config.topics.dlq)]
    mistyped = {orjson.loads(v)["id"]: orjson.loads(v) for v, _ in dlq if v}
    assert set(mistyped) == {"bad-a", "bad-a2", "bad-b"}
    assert mistyped["bad-a"]["features"] == {"x": "oops", "ssn": _pseudonym(KEY_A, CANARY)}
    assert mistyped["bad-a2"]["features"]["ssn"] == mistyped["bad-a"]["features"]["ssn"]  # stable under one key
    assert mistyped["bad-b"]["features"]["ssn"] == _pseudonym(KEY_B, CANARY)  # rotated: new value, new key id
    assert "note" not in mistyped["bad-a"]
    withheld = [h for v, h in dlq if not v]
    assert len(withheld) == 3 and all(h["dl_redacted"] == b"<unparsed body withheld>" for h in withheld)

    canary = CANARY.encode()
    inputs = {config.topics.features, config.topics.labels}
    scanned = 0
    for topic in set(config.topics.all().values()) - inputs:
        for message in reader(config, topic, idle_s=1.0):
            raw = (message.key() or b"") + (message.value() or b"") + b"".join(
                k.encode() + (v or b"") for k, v in message.headers() or [])
            assert canary not in raw, f"{topic} offset {message.offset()}"
            scanned += 1
    assert scanned > 190  # at least the predictions were read

    logs = first.stderr + second.stderr
    assert "restored version" in second.stderr and CANARY not in logs

    files = [p for p in Path(config.checkpoint.store_url).rglob("*") if p.is_file()]
    assert len(files) >= 3
    for path in files:
        assert canary not in path.read_bytes(), path

    env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode()}
    for extra in ([], ["--markdown"]):
        card = subprocess.run([sys.executable, "-m", "driftline.cli", "-c", str(toml), "models", "card", "champion",
                               *extra], env=env, capture_output=True, text=True, timeout=120)
        assert card.returncode == 0 and card.stdout, card.stderr[-1000:]
        assert CANARY not in card.stdout
