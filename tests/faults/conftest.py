"""Fault-injection fixtures: the real broker, processor subprocesses, and the invariants.

Every scenario ends with :func:`assert_invariants` (the ``invariants`` fixture), which
checks the same four promises against what Kafka and the version store hold:

1. every feature event that should have a prediction has exactly one committed prediction
   (read_committed), and nothing else has one;
2. every label that should be learned was learned exactly once: the latest version's
   ``engine.n_learned`` and ``engine.scores.n`` equal the expected count (and for
   ``logistic_regression`` every StandardScaler count too);
3. ``.dlq`` holds exactly the expected dead letters (by reason), nothing more;
4. the latest version loads and its signature verifies.

Sizes: ``FAULTS_SCALE`` (a float, default 1) multiplies the CI sizes; ``FAULTS_SOAK=1``
switches the scenarios that have one to their soak size (``scripts/faults.sh --soak``).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.config import DeploymentConfig, load_config
from driftline.runtime.tail import read_committed
from driftline.runtime.topics import create_topics
from driftline.versions.store import VersionStore

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
SIGNING_KEY = b"faults-suite-signing-key-0123456789"

SCALE = float(os.environ.get("FAULTS_SCALE", "1"))
SOAK = os.environ.get("FAULTS_SOAK", "") not in ("", "0", "false")


def scaled(ci: int, soak: int | None = None) -> int:
    """A size: ``ci`` times FAULTS_SCALE, or ``soak`` in soak mode."""
    if SOAK and soak is not None:
        return soak
    return max(1, int(ci * SCALE))


@pytest.fixture(scope="session")
def signing_key() -> bytes:
    return SIGNING_KEY


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if servers := os.environ.get("DRIFTLINE_TEST_BOOTSTRAP"):
        return servers
    port = os.environ.get("KAFKA_TEST_PORT", "28092")
    subprocess.run([str(KAFKA_SH), "start"], check=True, env={**os.environ, "KAFKA_PORT": port},
                   stdout=subprocess.DEVNULL)
    return f"127.0.0.1:{port}"


def new_config(bootstrap: str, store: Path, create: bool = True, **overrides: Any) -> DeploymentConfig:
    name = f"ft-{uuid.uuid4().hex[:10]}"
    settings = {
        "name": name,
        "kafka": {"bootstrap_servers": bootstrap, **overrides.pop("kafka", {})},
        "checkpoint": {"store_url": str(store), "every_examples": 1000, **overrides.pop("checkpoint", {})},
        "processor": {"max_idle_ms": 3000, **overrides.pop("processor", {})},
        # No adaptation by default, so the model's own sample counts can be checked below.
        "drift": {"policy": "none", **overrides.pop("drift", {})},
        **overrides,
    }
    config = load_config(**settings)
    if create:
        create_topics(config)
    return config


@pytest.fixture
def make_config(bootstrap: str, tmp_path: Path) -> Callable[..., DeploymentConfig]:
    """A fresh deployment (unique name, own topics, own version store) per call."""

    def make(create: bool = True, **overrides: Any) -> DeploymentConfig:
        return new_config(bootstrap, tmp_path / "versions", create, **overrides)

    return make


read_all = read_committed  # every committed message of a topic, until idle


def write_toml(config: DeploymentConfig, path: Path) -> Path:
    """The deployment as the TOML file the CLI reads (only what these tests set)."""
    data = config.model_dump(mode="json", exclude={"kafka": {"sasl_password"}})
    path.write_text(_toml(data))
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # TOML has no null: an unset member (None) is left out, as its default.
        return "{" + ", ".join(f"{orjson.dumps(k).decode()} = {_toml_value(v)}" for k, v in value.items()
                               if v is not None) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml(data: dict[str, Any]) -> str:
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    tables = []
    for key, table in data.items():
        if isinstance(table, dict):
            rows = [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
            tables.append(f"[{key}]\n" + "\n".join(rows))
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


class ProcessorRunner:
    """Starts ``python -m driftline.cli -c <toml> run`` subprocesses and keeps their logs."""

    def __init__(self, config: DeploymentConfig, workdir: Path, signing_key: bytes,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        # Logs outlive pytest's temporary directories, for post-mortems.
        workdir = Path(os.environ.get("FAULTS_LOG_DIR", ROOT / ".cache" / "faults-logs")) / config.name
        workdir.mkdir(parents=True, exist_ok=True)
        self.toml = write_toml(config, workdir / f"{config.name}.toml")
        self.workdir = workdir
        self.env = {**os.environ, "DRIFTLINE_SNAPSHOT_KEY": signing_key.decode(), "PYTHONFAULTHANDLER": "1",
                    **(env or {})}
        self.runs = 0
        self.logs: list[Path] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "driftline.cli", "-c", str(self.toml), "run", *args]

    def start(self, *args: str) -> subprocess.Popen:
        self.runs += 1
        log = self.workdir / f"run-{self.runs:04d}.log"
        self.logs.append(log)
        with open(log, "wb") as fh:
            return subprocess.Popen(self.command(*args), env=self.env, stdout=fh, stderr=subprocess.STDOUT)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = self.start(*args)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, self.logs[-1].read_bytes(), b"")

    def log_text(self, index: int = -1) -> str:
        return self.logs[index].read_text(errors="replace")

    def all_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)


def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc`` if it still runs; True if it was killed (not already exited)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def assert_invariants(
    config: DeploymentConfig,
    signing_key: bytes,
    predicted: Iterable[str],
    learned: int,
    dead_letters: dict[str, int] | collections.Counter | None = None,
    dlq_offsets: dict[tuple[str, int, int], str | set[str]] | None = None,
    idle_s: float = 3.0,
    check_scores: bool = True,
    unscored: int = 0,
) -> dict[str, Any]:
    """The four promises every fault scenario ends with; returns the measured figures.

    ``predicted``: the ids that must have exactly one committed prediction (no others).
    ``learned``: how many labels the model must have learned, exactly once each.
    ``dead_letters``: reason -> count expected on ``.dlq`` (empty: none at all).
    ``unscored``: how many of the learned examples had no prediction to score (``null``).
    ``dlq_offsets``: optionally, (topic, partition, offset) -> reason (or set of acceptable
    reasons) of each dead letter; then ``dead_letters`` may be left out.
    """
    expected_ids = collections.Counter(predicted)
    assert max(expected_ids.values(), default=1) == 1, "the test expects an id twice"

    # 1. Exactly one committed prediction per feature event.
    counts: collections.Counter = collections.Counter(
        orjson.loads(m.value())["id"] for m in read_all(config, config.topics.predictions, idle_s)
    )
    missing = expected_ids.keys() - counts.keys()
    unexpected = counts.keys() - expected_ids.keys()
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} feature events have no prediction, e.g. {sorted(missing)[:5]}"
    assert not unexpected, f"{len(unexpected)} unexpected predictions, e.g. {sorted(unexpected)[:5]}"
    assert not duplicated, f"{len(duplicated)} events predicted more than once, e.g. {list(duplicated.items())[:5]}"

    # 3. The dead-letter topic holds exactly what it should.
    dlq = read_all(config, config.topics.dlq, idle_s=1.0)
    reasons: collections.Counter = collections.Counter()
    for msg in dlq:
        headers = dict(msg.headers() or [])
        reason = headers.get("dl_reason", b"").decode()
        assert reason, f"dead letter without a reason at offset {msg.offset()}"
        reasons[reason] += 1
        if dlq_offsets is not None:
            where = (headers["dl_topic"].decode(), int(headers["dl_partition"]), int(headers["dl_offset"]))
            assert where in dlq_offsets, f"unexpected dead letter {where} ({reason}): {headers.get('dl_detail')!r}"
            wanted = dlq_offsets[where]
            wanted = {wanted} if isinstance(wanted, str) else wanted
            assert reason in wanted, f"{where}: expected {wanted}, got {reason} ({headers.get('dl_detail')!r})"
    if dead_letters is not None or dlq_offsets is None:
        assert reasons == collections.Counter(dead_letters or {}), f"dead letters {dict(reasons)} != {dead_letters}"
    if dlq_offsets is not None:
        assert len(dlq) == len(dlq_offsets)

    # 4. The latest version loads and verifies (unseal checks the HMAC before unpickling).
    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    latest = store.latest()
    assert latest is not None, "no version was ever cut"
    meta, state = store.load(latest)
    engine = state["engine"]

    # 2. Every label learned exactly once, by the model and by the metrics.
    assert engine.n_learned == learned, f"learned {engine.n_learned} labels, expected {learned}"
    if check_scores:
        # (an untrained model may predict nothing: those examples are learned, not scored)
        assert engine.scores.n == learned - unscored, f"scored {engine.scores.n} labels, expected {learned - unscored}"
    if (check_scores and config.model.preset == "logistic_regression" and not config.model.factory and learned
            and config.drift.policy == "none"):  # a reset starts a fresh scaler
        scaler = _scaler(engine.model)
        assert set(scaler.counts.values()) <= {learned}, f"StandardScaler counts {set(scaler.counts.values())}"
        assert scaler.counts, "the StandardScaler saw nothing"
    return {"predictions": sum(counts.values()), "learned": engine.n_learned, "dead_letters": dict(reasons),
            "version": latest, "examples_seen": meta["examples_seen"]}


def _scaler(model):
    """The StandardScaler inside a preset pipeline (plain or in a TransformerUnion)."""
    from river import compose, preprocessing

    stack = [model]
    while stack:
        step = stack.pop()
        if type(step) is preprocessing.StandardScaler:  # isinstance() is True for a Pipeline ending in one
            return step
        if type(step) is compose.Pipeline:
            stack.extend(step.steps.values())
        elif type(step) is compose.TransformerUnion:
            stack.extend(step.transformers.values())
    raise AssertionError("no StandardScaler in the model")


@pytest.fixture
def invariants() -> Callable[..., dict[str, Any]]:
    return assert_invariants


@pytest.fixture
def reader() -> Callable[..., list]:
    return read_all


@pytest.fixture
def harness():
    """This module: helpers (``scaled``, ``ProcessorRunner``, ``kill9``, ...) for the tests."""
    return sys.modules[__name__]


def replay_in_background(config: DeploymentConfig, rows: Iterable, **kwargs: Any) -> tuple[threading.Thread, dict]:
    """Start ``runtime.replay.replay(config, rows, **kwargs)`` in a thread.

    The returned dict gets ``n`` (events produced) or ``error`` (the exception), for the
    main thread to check after ``join()``.
    """
    from driftline.runtime.replay import replay

    produced: dict[str, object] = {}

    def produce() -> None:
        try:
            produced["n"] = replay(config, rows, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            produced["error"] = exc

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread, produced


def report(scenario: str, **figures: Any) -> None:
    """Append one scenario's measured figures to ``FAULTS_REPORT`` (JSON lines), if set."""
    line = orjson.dumps({"scenario": scenario, "scale": SCALE, "soak": SOAK,
                         "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures})
    print(line.decode())
    if path := os.environ.get("FAULTS_REPORT"):
        with open(path, "ab") as fh:
            fh.write(line + b"\n")


def now_ms() -> int:
    return int(time.time() * 1000)


def bootstrap_servers() -> str:
    """The shared test broker (what the ``bootstrap`` fixture returns, when it is set)."""
    return os.environ.get("DRIFTLINE_TEST_BOOTSTRAP") or f"127.0.0.1:{os.environ.get('KAFKA_TEST_PORT', '28092')}"
