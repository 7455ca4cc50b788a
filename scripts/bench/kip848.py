"""The consumer group protocols on this broker: classic with the range assignor (what
keyed mode uses) against KIP-848 (``group.protocol=consumer``, ``group.remote.assignor=range``).

Plain consumers, no Driftline: two topics of 8 partitions (features and labels of a
deployment), member A alone, then B joins, then A leaves (close). Measured: from B's
subscribe until both members hold a stable assignment, and from A's close until B holds
every partition; and whether the assignment co-partitions (the same indices of both topics
on the same member), which a keyed task needs.

    .venv/bin/python scripts/bench/kip848.py --bootstrap 127.0.0.1:26092 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 8


def _member(boot: str, group: str, protocol: str, topics: list[str]) -> tuple[Consumer, set]:
    held: set = set()
    conf = {"bootstrap.servers": boot, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False}
    if protocol == "consumer":
        conf |= {"group.protocol": "consumer", "group.remote.assignor": "range"}
    else:
        conf |= {"partition.assignment.strategy": "range", "session.timeout.ms": 6000}

    def on_assign(consumer, partitions):
        held.update((p.topic, p.partition) for p in partitions)
        if protocol == "consumer":
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)

    def on_revoke(consumer, partitions):
        held.difference_update((p.topic, p.partition) for p in partitions)
        if protocol == "consumer":
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    consumer = Consumer(conf)
    consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)
    return consumer, held


def _until(condition, members, limit_s=60.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit_s:
            raise TimeoutError("no stable assignment")
        for consumer in members:
            consumer.poll(0.05)
    return time.monotonic() - start


def _copartitioned(held: set, topics: list[str]) -> bool:
    return {p for t, p in held if t == topics[0]} == {p for t, p in held if t == topics[1]}


def once(boot: str, protocol: str) -> dict:
    admin = AdminClient({"bootstrap.servers": boot})
    base = f"bench-kip848-{uuid.uuid4().hex[:8]}"
    topics = [f"{base}.features", f"{base}.labels"]
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        f.result()
    time.sleep(1.0)
    total = 2 * PARTITIONS
    a, held_a = _member(boot, base, protocol, topics)
    first = _until(lambda: len(held_a) == total, [a])
    b, held_b = _member(boot, base, protocol, topics)
    join = _until(lambda: len(held_a) + len(held_b) == total and held_a and held_b and not held_a & held_b, [a, b])
    copart = _copartitioned(held_a, topics) and _copartitioned(held_b, topics)
    start = time.monotonic()
    a.close()
    leave = time.monotonic() - start + _until(lambda: len(held_b) == total, [b])
    b.close()
    for f in admin.delete_topics(topics).values():
        f.result()
    return {"first_s": first, "join_s": join, "leave_s": leave, "copartitioned": copart}


def run(boot: str, repeat: int = 3) -> dict:
    """Medians over ``repeat`` rounds per protocol (or the error a protocol gave)."""
    out: dict = {}
    for protocol in ("classic", "consumer"):
        try:
            runs = [once(boot, protocol) for _ in range(repeat)]
        except (KafkaException, TimeoutError) as exc:
            out[protocol] = {"error": str(exc).splitlines()[0]}
            continue
        out[protocol] = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("first_s", "join_s", "leave_s")}
        out[protocol]["copartitioned"] = all(r["copartitioned"] for r in runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(json.dumps(run(args.bootstrap, args.repeat), indent=2))


if __name__ == "__main__":
    main()
