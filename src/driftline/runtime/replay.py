"""Replay a data set into a deployment's features and labels topics.

Event ``i`` gets the record timestamp ``t0 + i * step_ms``; its label is published
``label_delay`` events later with the timestamp ``t_i + label_delay * step_ms``. That is the
timeline ``river.evaluate.progressive_val_score(..., delay=label_delay)`` simulates, so the
processor's metrics can be checked against River's.

Before sending, :func:`replay` checks that the cluster answers and the topics exist
(within seconds, instead of librdkafka retrying for minutes) and that the first rows match
the deployment's declared schema (rows the processor would dead-letter are refused with the
reason). It sends with :class:`~driftline.runtime.publisher.Publisher`, so keys,
partitioner and timestamps are what every producer application gets. Every message must
be acknowledged: otherwise a :class:`~driftline.exceptions.DeliveryError` says how many
were not, as soon as a flush sees one.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from driftline.config import DeploymentConfig
from driftline.core.events import EventSchema, decode_features, decode_label
from driftline.exceptions import BadEventError, SchemaMismatchError
from driftline.runtime.publisher import Publisher, encode_features

__all__ = ["replay", "encode_features", "check_schema", "pacing_block"]

SCHEMA_CHECK_ROWS = 100  # rows checked against the schema before anything is sent


def pacing_block(rate: float) -> int:
    """Events per pacing block: about 10 ms of the rate, 500 at full speed.

    >>> pacing_block(0), pacing_block(10_000), pacing_block(50)
    (500, 100, 1)
    """
    return 500 if rate <= 0 else max(1, min(500, int(rate / 100)))


def check_schema(config: DeploymentConfig, rows: Sequence[tuple[dict[str, Any], Any]]) -> None:
    """Refuse ``rows`` the processor would dead-letter: features other than ``[model]
    features`` (when declared), mistyped values, labels outside ``[model] classes``.

    >>> from driftline.config import load_config
    >>> config = load_config(name="m", model={"features": {"a": "num"}, "classes": [0, 1]})
    >>> check_schema(config, [({"a": 1.0}, 1)])
    >>> check_schema(config, [({"y": 1, "a": 0.5}, 0.5)])
    Traceback (most recent call last):
    ...
    driftline.exceptions.SchemaMismatchError: row 0 does not match the features of deployment m ([model] features: a): unexpected y; if y is the label column, name it as the target (driftline produce --target y)
    """
    model = config.model
    declared = dict(model.features)
    task = model.task or ("classification" if model.classes else None)
    schema = EventSchema(features=declared, classes=tuple(model.classes), task=task or "classification",
                         max_bytes=config.processor.max_message_bytes,
                         max_abs_value=config.processor.max_abs_feature)
    for i, (x, y) in enumerate(rows):
        features = encode_features(x)
        if declared and features.keys() != declared.keys():
            extra = sorted(features.keys() - declared.keys())
            missing = sorted(declared.keys() - features.keys())
            why = "; ".join(part for part in (f"unexpected {', '.join(extra)}" if extra else "",
                                               f"missing {', '.join(missing)}" if missing else "") if part)
            hint = (f"; if {extra[0]} is the label column, name it as the target (driftline produce --target "
                    f"{extra[0]})" if len(extra) == 1 else "")
            raise SchemaMismatchError(f"row {i} does not match the features of deployment {config.name} "
                                      f"([model] features: {', '.join(declared)}): {why}{hint}")
        try:
            decode_features(orjson.dumps({"id": "check", "features": features}), schema, config.name)
            if task is not None:
                decode_label(orjson.dumps({"id": "check", "label": y}), schema, config.name)
        except BadEventError as exc:
            raise SchemaMismatchError(f"row {i} would be dead-lettered by deployment {config.name} ({exc}): "
                                      "check the data against [model] features and classes, and --target") from None


def replay(
    config: DeploymentConfig,
    rows: Iterable[tuple[dict[str, Any], Any]],
    label_delay: int = 0,
    rate: float = 0.0,
    step_ms: int = 1,
    id_prefix: str = "e",
    n_rows: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce every row's features, then its label ``label_delay`` events later.

    Labels are acknowledged by the broker before any later feature is sent (blocks of
    :func:`pacing_block` events), so a processor that is already running sees each label
    no later than the features stamped after it, as when everything is produced first.

    ``rate`` limits events per second (0 = as fast as possible). Without a rate, or when
    ``n_rows`` is known, timestamps are synthetic (``step_ms`` apart, ending near the current
    time so brokers never see records from the future); otherwise they are the wall clock.
    """
    rows = iter(rows)
    head = list(itertools.islice(rows, SCHEMA_CHECK_ROWS))
    check_schema(config, head)  # the first rows, with the reasons spelled out; then unchecked
    rows = itertools.chain(head, rows)
    # Opening checks, within seconds, for an unreachable cluster, bad credentials, missing topics.
    publisher = Publisher(config, validate=False, check_topics=True).open()

    synthetic = n_rows is not None or rate == 0
    t0 = int(time.time() * 1000) - ((n_rows or 0) + label_delay) * step_ms
    pending: deque[tuple[int, str, Any]] = deque()  # (due index, id, label)

    def label_time(due: int) -> int:
        return t0 + due * step_ms if synthetic else int(time.time() * 1000)

    # Pacing: a running processor predicts a feature with the labels it has fetched. For it
    # to see every label stamped at or before a feature's time, those labels must be on the
    # broker before the feature is sent: each block's labels are acknowledged (flush) before
    # the block's features go. A label sent early is harmless: the processor holds labels
    # until the features' watermark passes them (core/ordering.py).
    block = pacing_block(rate)
    started = time.monotonic()
    n = 0
    rows_iter = iter(rows)
    done = False
    with publisher:  # flushes at the end: every message acknowledged, or DeliveryError
        while not done:
            features: list[tuple[str, dict[str, Any], int]] = []
            for x, y in rows_iter:
                i = n + len(features)
                event_id = f"{id_prefix}{i}"
                features.append((event_id, x, i))
                pending.append((i + label_delay, event_id, y))
                if len(features) >= block:
                    break
            else:
                done = True
            if not features:
                break
            last = features[-1][2]
            sent_labels = False
            # Labels due by the block's end go first: labels sort before features at equal times.
            while pending and pending[0][0] <= last:
                due, event_id, y = pending.popleft()
                publisher.label(event_id, y, time=label_time(due))
                sent_labels = True
            if sent_labels:
                publisher.flush()  # raises DeliveryError as soon as a message was refused
            for event_id, x, i in features:
                ts = t0 + i * step_ms if synthetic else int(time.time() * 1000)
                publisher.features(event_id, x, time=ts)
                n += 1
                if on_progress is not None and n % 1000 == 0:
                    on_progress(n)
                if rate > 0:
                    ahead = n / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        for due, event_id, y in pending:
            publisher.label(event_id, y, time=label_time(due))
    return n
