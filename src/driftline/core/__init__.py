"""The I/O-free engine: decoding, ordering, predict/join/train, metrics and drift.

Nothing in this package imports ``confluent_kafka``; records come in as
:class:`~driftline.core.events.InputRecord` and results leave as
:mod:`~driftline.core.outputs` values.
"""

from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.core.ordering import EventTimeMerger

__all__ = ["Engine", "EventTimeMerger", "InputRecord"]
