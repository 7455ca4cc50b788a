"""Whether a deployment's processor is running, as Kafka itself knows it.

The processor's input consumer uses ``assign()``, so its consumer group has no members to
see, and a transactional producer's state cannot be queried. So every running processor
also joins one more consumer group, ``<group_id>.live``, subscribed to the lifecycle topic
(it reads nothing: the records it is handed are dropped, offsets are never committed). The
broker keeps that membership alive from the client's background heartbeats and drops it
on a clean stop at once, after ``LIVE_SESSION_TIMEOUT_MS`` when the process dies (kill -9,
a lost machine). The member's ``client.id`` says which instance it is: pid, host and the
admin API's URL. ``driftline models promote|rollback`` without ``--admin-url`` asks the
broker for the group's members first and refuses while there is one: its embedded
processor would fence the running one (same ``transactional.id``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from confluent_kafka import KafkaException

from driftline.config import DeploymentConfig
from driftline.exceptions import KafkaSetupError
from driftline.runtime.clients import make_admin, make_consumer

__all__ = ["LIVE_SESSION_TIMEOUT_MS", "LivenessMember", "live_group", "live_instances"]

LIVE_SESSION_TIMEOUT_MS = 10_000  # a dead processor stops counting as running after this


def live_group(config: DeploymentConfig) -> str:
    return f"{config.group_id}.live"


class LivenessMember:
    """This process's membership of the deployment's ``.live`` group; :meth:`poll` it now
    and then (well within ``max.poll.interval.ms``, 5 minutes)."""

    def __init__(self, config: DeploymentConfig, admin_url: str | None = None) -> None:
        client_id = f"driftline/{config.name} pid={os.getpid()} host={socket.gethostname()} admin={admin_url or '-'}"
        self.consumer = make_consumer(config, group_id=live_group(config), **{
            "client.id": client_id, "session.timeout.ms": LIVE_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 1000, "auto.offset.reset": "latest", "enable.partition.eof": False,
        })
        self.consumer.subscribe([config.topics.lifecycle])

    def poll(self) -> None:
        self.consumer.poll(0)  # a lifecycle record it may return is not ours to read

    def close(self) -> None:
        self.consumer.close()  # leaves the group at once


def live_instances(config: DeploymentConfig, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The running processors of the deployment: ``instance`` (their client.id), ``host``
    as the broker sees it and ``admin_url`` (None when they serve no admin API)."""
    group, admin = live_group(config), make_admin(config)  # kept referenced until the answer came
    try:
        future = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group]
        description = future.result(timeout=timeout_s + 5)
    except TimeoutError:
        raise KafkaSetupError(f"cannot ask Kafka whether deployment {config.name} is running: "
                              f"no answer in {timeout_s:g} s") from None
    except KafkaException as exc:
        raise KafkaSetupError(f"cannot ask Kafka whether deployment {config.name} is running "
                              f"(describe group {group}): {exc.args[0].str() if exc.args else exc}") from None
    out = []
    for member in description.members:
        admin = member.client_id.rsplit(" admin=", 1)[-1] if " admin=" in member.client_id else "-"
        out.append({"instance": member.client_id, "host": member.host.lstrip("/"),
                    "admin_url": None if admin == "-" else admin})
    return out
