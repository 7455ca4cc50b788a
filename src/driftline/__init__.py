"""Driftline: keep River models learning from live Kafka streams.

The package is layered:

- :mod:`driftline.core` is the I/O-free engine (decode, predict, join, train, detect drift).
- :mod:`driftline.versions` signs, stores and loads model versions.
- :mod:`driftline.runtime` is the only layer that talks to Kafka.
- :mod:`driftline.observability` holds Prometheus metrics and structured logs.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
