"""Which partition a key lands on: Kafka's Java default partitioner, in pure Python.

Java producers place a keyed record on ``toPositive(murmur2(key)) % partitions``
(``org.apache.kafka.common.utils.Utils.murmur2``, seed ``0x9747b28c``). librdkafka's
``murmur2_random`` partitioner computes the same, which is why Driftline's producers set
it: features, labels and predictions of one id must share a partition number whichever
language produced them. :func:`partition_for` lets a producer in any environment check
where an id goes (tests/integration/client compares it with Kafka's own Java code).

The values Kafka's own ``UtilsTest.testMurmur2`` asserts:

>>> murmur2(b"21"), murmur2(b"foobar"), murmur2(b"a-little-bit-long-string")
(-973932308, -790332482, -985981536)
>>> [partition_for(f"e{i}", 3) for i in range(8)]
[0, 0, 0, 0, 1, 0, 1, 2]
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as the signed int Java returns."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    tail = 4 * n4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition a Java producer (or librdkafka with ``murmur2_random``) picks for ``key``.

    >>> partition_for("e12", 1)
    0
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions
