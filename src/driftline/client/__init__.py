"""Python clients for the applications around a deployment.

Producer applications publish with :class:`Publisher` (key, partitioner, event-time
timestamp and body shape right by construction); consumers of predictions, drift events
and versions read typed records with :class:`Reader` (read_committed, ``ce_id``
deduplication, resume from committed offsets). See docs/clients.md, which also states the
rules for producers in other languages.

The Kafka parts live in :mod:`driftline.runtime` (the only package that imports
``confluent_kafka``) and are imported on first use, so the records and
:func:`partition_for` work without a client library:

>>> from driftline.client import partition_for
>>> partition_for("e7", 3)
2
"""

from __future__ import annotations

from typing import Any

from driftline.client.partitioning import murmur2, partition_for
from driftline.client.records import (DriftEvent, GlobalRelease, Heartbeat, LifecycleRecord, Prediction, Record,
                                      VersionAnnouncement)

__all__ = ["Publisher", "Reader", "Prediction", "DriftEvent", "VersionAnnouncement", "GlobalRelease", "Heartbeat",
           "LifecycleRecord", "Record", "murmur2", "partition_for"]

_LAZY = {"Publisher": "driftline.runtime.publisher", "Reader": "driftline.runtime.reader"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'driftline.client' has no attribute {name!r}")
