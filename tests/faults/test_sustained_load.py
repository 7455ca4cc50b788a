"""Scenario 5: sustained load at the processor's measured maximum, labels too late to join.

1. **Measure.** A pre-loaded stream of the same shape goes through one processor run; its
   ``driftline_events_in_total`` (scraped every 0.2 s) gives the maximum rate on this machine.
2. **Load.** A fresh deployment runs as a subprocess while the test produces at that rate for
   a fixed time. Every label is ``DELAY = 2 * MAX_PENDING`` events late, so the join buffer is
   always full: feature ``j`` is evicted by size when feature ``j + MAX_PENDING`` arrives, long
   before its label, and that label becomes an orphan. Orphans are evicted by size too, and
   the ones still waiting at the end expire by age when a last ``sentinel`` event moves event
   time past ``join.max_age_ms``. ``processor.max_buffered_per_partition`` is small, so the
   consumer must pause partitions (backpressure) rather than buffer without bound.
3. **Drop.** Production stops (then the late tail of labels and the sentinel); the processor
   drains and exits by itself (``--exit-when-idle``).

Sampled every 0.5 s: RSS (``VmRSS`` of ``/proc/<pid>/status``), the lag of the committed
offsets behind the partition ends, and the processor's own ``/metrics``.

Expected from first principles, with ``N`` events produced and ``P = MAX_PENDING``:

* predictions: exactly one for each of the ``N`` events and the sentinel;
* ``expired_features = N - P`` (all but the last ``P`` features are evicted by size);
* learned ``P`` (the last ``P`` features are still pending when their labels come);
* ``label_without_features`` dead letters: ``N - P`` (the labels of the evicted features:
  ``N - 2P`` evicted by size, ``P`` by age at the sentinel), ``expired_labels`` the same;
* RSS bounded by the caps: it does not grow in the second half of the load beyond the
  first half's maximum plus one full join buffer (``P`` × measured bytes per pending entry,
  both sides), and never beyond a generous absolute bound derived from the same sizes.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition

from driftline.core.events import EventSchema, InputRecord, decode_features
from driftline.core.join import JoinBuffer, OrphanLabel, Pending
from driftline.core.ordering import EventTimeMerger
from driftline.datasets import stream
from driftline.runtime.clients import MAX_MESSAGE_BYTES, make_consumer, make_producer
from driftline.runtime.replay import encode_features

pytestmark = pytest.mark.faults

SEED = 5
MAX_PENDING = 5_000
DELAY = 2 * MAX_PENDING          # label delay, in events: always past the join buffer's cap
MAX_BUFFERED = 1_000             # processor.max_buffered_per_partition
BATCH = 500                      # processor.batch_size
MAX_AGE_MS = 3_600_000           # join.max_age_ms; the whole stream spans less event time than this
POOL = 2_000                     # distinct feature rows (ids differ per event)
PREFETCH_KB = 16_384             # consumer queued.max.messages.kbytes (librdkafka's default: 65536)
MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _scrape(port: int) -> dict[str, float] | None:
    """``name{labels}`` -> value from the processor's /metrics, or None if not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if line.startswith("driftline_") and " " in line:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _total(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


class Stream:
    """The scenario's events: seeded Agrawal rows, ids ``e<i>``, timestamps ``t0 + i`` ms."""

    def __init__(self) -> None:
        rows = list(stream("synth:agrawal", limit=POOL, seed=SEED))
        self.features = [orjson.dumps(encode_features(x)) for x, _ in rows]
        self.labels = [orjson.dumps(y) for _, y in rows]
        self.t0 = int(time.time() * 1000) - 2 * MAX_AGE_MS  # all in the past, sentinel included

    def feature(self, i: int) -> bytes:
        return b'{"id":"e%d","features":%s}' % (i, self.features[i % POOL])

    def label(self, i: int) -> bytes:
        return b'{"id":"e%d","label":%s}' % (i, self.labels[i % POOL])


def produce(config, events: Stream, rate: float, seconds: float | None, n_max: int | None,
            on_load_end=None) -> int:
    """Features at ``rate`` events/s (0: flat out) with each label ``DELAY`` events late;
    then, load dropped, the labels still due and a sentinel event past ``MAX_AGE_MS``."""
    topics = config.topics
    producer = make_producer(config, transactional=False, **{"linger.ms": 20, "acks": "all"})
    errors: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            errors.append(err.str())

    def send(topic: str, key: bytes, value: bytes, ts: int) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=ts, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)

    t0, n = events.t0, 0
    started = time.monotonic()
    while (n_max is None or n < n_max) and (seconds is None or time.monotonic() - started < seconds):
        # one tick of 10 ms worth of events (or 1,000 when flat out)
        due = n + 1_000 if rate <= 0 else int((time.monotonic() - started) * rate) + 1
        for i in range(n, min(due, n_max) if n_max is not None else due):
            if i >= DELAY:  # the label of event i - DELAY: same timestamp, sorts before feature i
                j = i - DELAY
                send(topics.labels, b"e%d" % j, events.label(j), t0 + i)
            send(topics.features, b"e%d" % i, events.feature(i), t0 + i)
        n = max(n, min(due, n_max) if n_max is not None else due)
        producer.poll(0)
        if rate > 0:
            time.sleep(0.01)
    # Load dropped. Every feature is on the broker before the tail of labels exists, so the
    # processor can never see a tail label before a feature (the expected counts rely on it).
    assert producer.flush(60) == 0
    if on_load_end is not None:
        on_load_end(n)
    for j in range(max(0, n - DELAY), n):
        send(topics.labels, b"e%d" % j, events.label(j), t0 + j + DELAY)
    assert producer.flush(60) == 0
    sentinel_ts = t0 + n + DELAY + MAX_AGE_MS + 1  # moves event time past every orphan's age
    send(topics.features, b"sentinel", b'{"id":"sentinel","features":%s}' % events.features[0], sentinel_ts)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]
    return n


def bytes_per_entry(events: Stream, config) -> tuple[float, float, float]:
    """Measured heap bytes per pending feature, per orphan label, per merger record."""
    schema = EventSchema(features={}, classes=(), task="classification",
                         max_bytes=config.processor.max_message_bytes, max_abs_value=1e12)
    n = MAX_PENDING
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        buf = JoinBuffer(MAX_AGE_MS, 10 * n)
        for i in range(n):
            event = decode_features(events.feature(i), schema, config.name)
            buf.add_features(event.id, Pending(event.features, True, {True: 0.5, False: 0.5}, 0, i))
        features = (tracemalloc.get_traced_memory()[0] - base) / n
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n, 2 * n):
            rec = InputRecord("labels", 0, i, i, b"e%d" % i, events.label(i))
            buf.add_label(f"e{i}", OrphanLabel(True, i, rec))
        labels = (tracemalloc.get_traced_memory()[0] - base) / n
        base = tracemalloc.get_traced_memory()[0]
        merger = EventTimeMerger([("features", 0)], 0)
        for i in range(n):
            merger.push(InputRecord("features", 0, i, i, b"e%d" % i, events.feature(i)))
        records = (tracemalloc.get_traced_memory()[0] - base) / n
    finally:
        tracemalloc.stop()
    return features, labels, records


class Sampler(threading.Thread):
    """RSS, committed-offset lag and /metrics of the processor every ``every`` seconds."""

    def __init__(self, config, proc, port: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.config, self.proc, self.port, self.every = config, proc, port, every
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.started = time.monotonic()  # sample times are seconds since this

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def _run(self) -> None:
        topics = self.config.topics
        tps = [TopicPartition(topics.features, 0), TopicPartition(topics.labels, 0)]
        consumer = make_consumer(self.config)  # the processor's group id, never subscribed
        started = self.started
        try:
            while not self.stop.is_set():
                t = time.monotonic() - started
                rss = _rss(self.proc.pid) if self.proc.poll() is None else None
                lag = None
                try:
                    committed = consumer.committed(tps, timeout=5)
                    high = [consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in tps]
                    lag = sum(h - max(c.offset, 0) for h, c in zip(high, committed))
                except Exception:  # noqa: BLE001 - a missed sample, not a failure
                    pass
                metrics = _scrape(self.port) if self.proc.poll() is None else None
                self.samples.append({
                    "t": round(t, 2), "rss": rss, "lag": lag, "alive": self.proc.poll() is None,
                    "metric_lag": _total(metrics, "driftline_consumer_lag") if metrics else None,
                    "pending": _total(metrics, "driftline_join_pending") if metrics else None,
                    "events_in": _total(metrics, "driftline_events_in_total") if metrics else None,
                    "pauses": _total(metrics, "driftline_backpressure_pauses_total") if metrics else None,
                })
                if self.proc.poll() is not None and lag is not None:
                    return
                self.stop.wait(max(0.0, self.every - (time.monotonic() - started - t)))
        finally:
            consumer.close()


def measure_max_rate(make_config, harness, signing_key, tmp_path, events: Stream, overrides: dict) -> dict:
    """Events per second (one feature and one label each) of one processor run over a
    pre-loaded stream of the scenario's shape."""
    n = harness.scaled(30_000, soak=100_000)
    config = make_config(**overrides)
    produced = produce(config, events, rate=0, seconds=None, n_max=n)
    records = 2 * produced + 1
    runner = harness.ProcessorRunner(config, tmp_path, signing_key)
    port = _free_port()
    proc = runner.start("--metrics-port", str(port), "--exit-when-idle", "3")
    counts: list[tuple[float, float]] = []
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            metrics = _scrape(port)
            if metrics is not None:
                counts.append((time.monotonic(), _total(metrics, "driftline_events_in_total")))
                if counts[-1][1] >= records:
                    break
            time.sleep(0.2)
        proc.wait(120)
    finally:
        harness.kill9(proc)
    assert proc.returncode == 0, runner.log_text()[-3000:]
    moving = [(t, c) for t, c in counts if c > 0]
    assert len(moving) >= 2 and moving[-1][1] >= records, f"could not measure the rate: {counts[-5:]}"
    # from the first sample with progress to the first sample with everything processed
    (t1, c1), (t2, c2) = moving[0], moving[-1]
    per_s = (c2 - c1) / (t2 - t1)
    return {"events": produced, "records_per_s": round(per_s), "events_per_s": round(per_s / 2)}


def test_sustained_load(make_config, harness, invariants, signing_key, tmp_path, record_property):
    load_s = harness.scaled(30, soak=600)
    backlog_s = load_s / 6
    events = Stream()
    overrides = {
        # librdkafka's prefetch queue is the third memory cap (with the join and merger caps).
        # Its fetch.queue.backoff.ms (default 1000) postpones a partition's next fetch while the
        # queue is over that cap; a pause purges the queue, so with the default every pause cost
        # ~1 s and the processor crawled at 1,500 records/s under backpressure (docs/reliability.md).
        "kafka": {"extra": {"queued.max.messages.kbytes": str(PREFETCH_KB), "fetch.queue.backoff.ms": "50"}},
        "join": {"max_pending": MAX_PENDING, "max_age_ms": MAX_AGE_MS},
        "processor": {"max_buffered_per_partition": MAX_BUFFERED, "batch_size": BATCH, "commit_interval_ms": 100},
        "checkpoint": {"every_examples": 1_000, "every_seconds": 10.0},
    }

    measured = measure_max_rate(make_config, harness, signing_key, tmp_path, events, overrides)
    rate = measured["events_per_s"]
    assert rate > 0

    config = make_config(**overrides)
    assert config.model.preset == "logistic_regression"
    per_feature, per_label, per_record = bytes_per_entry(events, config)
    join_bytes = MAX_PENDING * (per_feature + per_label)
    merger_bytes = 2 * (MAX_BUFFERED + BATCH) * per_record  # two sources, each at most cap + one batch
    # librdkafka: the prefetch queue cap plus one fetch response (two partitions in flight)
    kafka_bytes = PREFETCH_KB * 1024 + 2 * MAX_MESSAGE_BYTES

    # The load starts before the processor does (a restart under load): it begins behind by
    # BACKLOG_S of input, catches up with large fetches (where the event-time buffer must
    # push back), then runs at the measured maximum until the load drops.
    marks: dict[str, float] = {}
    produced: dict[str, object] = {}

    def load() -> None:
        try:
            marks["load_start"] = time.monotonic()
            produced["n"] = produce(config, events, rate=rate, seconds=load_s, n_max=None,
                                    on_load_end=lambda _n: marks.setdefault("load_end", time.monotonic()))
            marks["tail_end"] = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            produced["error"] = exc

    producer = threading.Thread(target=load, daemon=True)
    producer.start()
    time.sleep(backlog_s)
    runner = harness.ProcessorRunner(config, tmp_path, signing_key)
    port = _free_port()
    proc = runner.start("--metrics-port", str(port), "--exit-when-idle", "8")
    deadline = time.monotonic() + 60
    while '"processing"' not in runner.log_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, runner.log_text()[-3000:]
    baseline_rss = _rss(proc.pid)
    sampler = Sampler(config, proc, port)
    sampler.start()
    try:
        producer.join(load_s + 300)
        assert "error" not in produced, produced.get("error")
        n = produced["n"]
        proc.wait(300 + n / 500)  # a hard bound, far above any healthy drain
    finally:
        harness.kill9(proc)
        sampler.stop.set()
        sampler.join(30)
    assert sampler.error is None, sampler.error
    origin = sampler.started
    (runner.workdir / "samples.json").write_bytes(orjson.dumps(
        {"marks": {k: round(v - origin, 2) for k, v in marks.items()}, "samples": sampler.samples}))
    log = runner.log_text()
    assert proc.returncode == 0, f"the processor ended with {proc.returncode} (an OOM kill is -9):\n{log[-3000:]}"

    # -- memory ---------------------------------------------------------------------------
    t_load_end = marks["load_end"] - origin
    t_tail_end = marks["tail_end"] - origin
    during = [s for s in sampler.samples if s["rss"] is not None and s["t"] <= t_load_end]
    first = [s["rss"] for s in during if s["t"] < t_load_end / 2]
    second = [s["rss"] for s in during if s["t"] >= t_load_end / 2]
    rss_all = [s["rss"] for s in sampler.samples if s["rss"] is not None]
    assert first and second, sampler.samples[:5]
    # What the caps allow to come and go: a whole join buffer, merger and prefetch queue.
    growth_margin = join_bytes + merger_bytes + kafka_bytes
    assert max(second) <= max(first) + growth_margin, (
        f"RSS grew under steady load: first half max {max(first) / MiB:.1f} MiB, second half max "
        f"{max(second) / MiB:.1f} MiB, allowed growth {growth_margin / MiB:.1f} MiB")
    absolute = baseline_rss + 4 * (join_bytes + merger_bytes + kafka_bytes) + 256 * MiB
    assert max(rss_all) <= absolute, f"RSS {max(rss_all) / MiB:.1f} MiB > bound {absolute / MiB:.1f} MiB"

    # -- lag ---------------------------------------------------------------------------
    lags = [s for s in sampler.samples if s["lag"] is not None]
    peak = max(lags, key=lambda s: s["lag"])
    recovered = next((s for s in lags if s["t"] >= t_tail_end and s["lag"] == 0 and s["alive"]), None)
    assert recovered is not None, f"lag never recovered to 0 while the processor ran: {lags[-5:]}"
    assert lags[-1]["lag"] == 0, lags[-1]
    metric_lags = [s["metric_lag"] for s in sampler.samples if s["metric_lag"] is not None]

    # -- backpressure: explicit pauses, each at the cap and bounded ----------------------
    paused = [orjson.loads(line)["attributes"]["buffered"] if line.startswith("{") and "buffered" in line else None
              for line in log.splitlines() if "backpressure: partition paused" in line]
    resumed = sum("backpressure: partition resumed" in line for line in log.splitlines())
    pauses_metric = max((s["pauses"] or 0) for s in sampler.samples)
    assert paused, "the merger never hit max_buffered_per_partition: no backpressure was exercised"
    assert pauses_metric >= 1 and pauses_metric <= len(paused)
    assert resumed >= len(paused) - 2  # at most one source per partition is paused at exit
    sizes = [b for b in paused if b is not None]
    assert sizes and all(MAX_BUFFERED <= b < MAX_BUFFERED + BATCH for b in sizes), sizes[:10]

    # -- nothing lost, nothing twice, evictions exactly as computed ------------------------
    assert n > 2 * MAX_PENDING + DELAY, f"only {n} events: the join buffer never wrapped"
    evicted = n - MAX_PENDING
    figures = invariants(config, signing_key, predicted=[*(f"e{i}" for i in range(n)), "sentinel"],
                         learned=MAX_PENDING, dead_letters={"label_without_features": evicted})
    from driftline.versions.store import VersionStore

    store = VersionStore(config.checkpoint.store_url, config.name, signing_key)
    meta = store.meta(store.latest())
    counters = meta["counters"]
    assert counters["features"] == n + 1 and counters["labels"] == n, counters
    assert counters["expired_features"] == evicted, counters
    assert counters["expired_labels"] == evicted, counters
    assert counters["joined"] == MAX_PENDING and counters["dead_letters"] == evicted, counters

    timeline = [[s["t"], round(s["rss"] / MiB, 1) if s["rss"] else None, s["lag"]] for s in sampler.samples]
    result = {
        "events": n, "labels": n, "rate_events_per_s": rate, "measured": measured,
        "load_s": round(marks["load_end"] - marks["load_start"], 1),
        "processor_started_after_s": round(origin - marks["load_start"], 1), "max_pending": MAX_PENDING, "label_delay": DELAY,
        "max_buffered_per_partition": MAX_BUFFERED, "batch_size": BATCH,
        "expired_features": counters["expired_features"], "expired_labels": counters["expired_labels"],
        "dead_letters": figures["dead_letters"], "learned": figures["learned"], "lost": 0, "duplicated": 0,
        "bytes_per_pending_feature": round(per_feature), "bytes_per_orphan_label": round(per_label),
        "bytes_per_merger_record": round(per_record),
        "rss_baseline_mb": round(baseline_rss / MiB, 1), "rss_min_mb": round(min(rss_all) / MiB, 1),
        "rss_max_mb": round(max(rss_all) / MiB, 1), "rss_first_half_max_mb": round(max(first) / MiB, 1),
        "rss_second_half_max_mb": round(max(second) / MiB, 1), "rss_growth_allowed_mb": round(growth_margin / MiB, 1),
        "queued_max_messages_kbytes": PREFETCH_KB,
        "rss_bound_mb": round(absolute / MiB, 1),
        "lag_peak": peak["lag"], "lag_peak_at_s": peak["t"], "metric_lag_peak": max(metric_lags, default=None),
        "lag_recovered_s_after_load_drop": round(recovered["t"] - t_load_end, 1),
        "lag_recovered_s_after_tail": round(recovered["t"] - t_tail_end, 1),
        "backpressure_pauses": len(paused), "backpressure_resumes": resumed,
        "paused_at_buffered_max": max(sizes), "versions": figures["version"],
        "rss_mb_lag_over_time": timeline,
    }
    record_property("figures", {k: v for k, v in result.items() if k != "rss_mb_lag_over_time"})
    harness.report("sustained_load", **result)
