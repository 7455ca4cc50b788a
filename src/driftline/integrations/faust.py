"""Run Driftline's engine inside a Faust agent (extra ``driftline[faust]``).

For teams that already run faust-streaming: :class:`DriftlineAgent` adds to a
``faust.App`` one agent reading the deployment's ``.features`` and ``.labels`` topics as
one stream; every record goes through :class:`driftline.core.Engine` (predict, join,
learn, drift detection, the adaptation policy) and what it emits is sent to ``.predictions``,
``.drift`` and ``.dlq`` with the keys, bodies and headers of docs/events.md.

What holds and what does not (docs/integrations.md):

- Records are processed in the order Faust delivers them: per partition in offset order,
  but across partitions and across the two topics in arrival order. Driftline's own
  processor merges its inputs by event time; this agent does not, so a label can be learned
  later (or earlier) than the processor would learn it, and the results match River's
  ``progressive_val_score`` only when labels arrive after the features stamped before them.
- The engine's state lives in the worker's memory: no versions are cut and nothing is
  restored, so a restarted worker starts a fresh model. Run one worker per deployment
  (a rebalance that moves partitions to another worker moves no state).
- Outputs are sent with Faust's producer (aiokafka, Java's murmur2 partitioner, no
  transactions) and offsets are committed with Faust's ``at_least_once`` guarantee: after a
  crash, outputs may repeat (same ``ce_id``, deduplicate with
  :class:`driftline.client.Reader`) and, the state being lost, learning is not repeated.
  Faust's ``exactly_once`` has open duplicate reports (faust-streaming #323, #517, #177);
  Driftline's processor is the exactly-once path.
- Challengers and the lifecycle commands are the processor's: a config with challengers is
  refused.

>>> import faust
>>> from driftline.config import load_config
>>> app = faust.App("scoring", broker="kafka://127.0.0.1:9092", autodiscover=False)
>>> agent = DriftlineAgent(app, load_config(name="elec"))
>>> agent.source.topics
('driftline.elec.features', 'driftline.elec.labels')
"""

from __future__ import annotations

import time
from typing import Any

import faust

from driftline.config import DeploymentConfig
from driftline.core.engine import Engine
from driftline.core.events import InputRecord
from driftline.integrations.outputs import to_message

__all__ = ["DriftlineAgent"]

_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


class DriftlineAgent:
    """One deployment's engine as an agent of ``app``; ``engine`` defaults to a fresh one."""

    def __init__(self, app: faust.App, config: DeploymentConfig, engine: Engine | None = None,
                 name: str | None = None) -> None:
        if config.lifecycle.challengers:
            raise ValueError("challengers need Driftline's processor (lifecycle runtime); "
                             "the Faust agent runs the champion only")
        self.config = config
        self.engine = engine if engine is not None else Engine(config)
        topics = config.topics
        self.source = app.topic(topics.features, topics.labels, **_RAW)
        self.outputs = {kind: app.topic(getattr(topics, kind), **_RAW) for kind in ("predictions", "drift", "dlq")}
        self.agent = app.agent(self.source, name=name or f"driftline.{config.name}")(self._process)

    async def _process(self, stream) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    async def handle(self, message: Any) -> None:
        """Process one Faust ``ConsumerMessage`` and send what it produced."""
        topics = self.config.topics
        kind = "features" if message.topic == topics.features else "labels"
        timestamp = int(round(message.timestamp * 1000)) if message.timestamp is not None else 0
        record = InputRecord(kind, message.partition, message.offset, timestamp, message.key, message.value)
        for output in self.engine.process(record, int(time.time() * 1000)):
            encoded = to_message(output, self.config.name)
            if encoded is None:
                continue
            out_kind, key, value, headers = encoded
            if out_kind == "dlq":  # name the topic the record came from, as the processor does
                headers = [(h, getattr(topics, kind).encode() if h == "dl_topic" else v) for h, v in headers]
            await self.outputs[out_kind].send(key=key, value=value, headers=headers)
