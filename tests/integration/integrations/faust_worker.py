"""A Faust worker running DriftlineAgent until it has predicted and learned every event,
then writing its engine and the order it processed the records in (for the test to replay
the same order in memory). Run by test_faust.py:

    python faust_worker.py <deployment.toml> <events> <out.pickle> <datadir>
"""

from __future__ import annotations

import os
import pickle
import sys
import time

import faust

from driftline.config import load_config
from driftline.integrations.faust import DriftlineAgent


def main() -> None:
    toml, events, out, datadir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    config = load_config(toml)
    app = faust.App(f"driftline-faust-test-{config.name}", broker=f"kafka://{config.kafka.bootstrap_servers}",
                    store="memory://", web_enabled=False, datadir=datadir, topic_partitions=1,
                    topic_replication_factor=1, autodiscover=False)
    order: list[tuple[str, int, int]] = []

    class TracedAgent(DriftlineAgent):
        async def handle(self, message) -> None:
            order.append((message.topic, message.partition, message.offset))
            await super().handle(message)
            engine = self.engine
            if engine.counters.predictions >= events and engine.n_learned >= events:
                await app.producer.flush()
                with open(out, "wb") as fh:
                    pickle.dump({"engine": engine, "order": order}, fh)
                os._exit(0)  # faust has no clean "stop after N events"; the result is written

    TracedAgent(app, config)
    started = time.monotonic()

    @app.timer(1.0)
    async def watchdog() -> None:
        if time.monotonic() - started > 240:
            os._exit(3)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
