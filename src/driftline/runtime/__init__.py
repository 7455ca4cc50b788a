"""The Kafka runtime: the only package that imports ``confluent_kafka``.

It feeds :class:`driftline.core.Engine` from the features and labels topics and writes
its outputs back in Kafka transactions.
"""

__all__: list[str] = []
