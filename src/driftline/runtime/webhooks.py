"""Deliver drift and lifecycle events as CloudEvents over HTTP, outside the processing loop.

The forwarder is its own process (``driftline webhooks``): it reads ``.drift`` and
``.lifecycle`` with :class:`~driftline.runtime.reader.Reader` (read_committed, its own
consumer group) and POSTs each record in CloudEvents HTTP binary mode: the body is the
record's JSON, the attributes are ``ce-*`` headers, and ``X-Driftline-Signature`` is
``sha256=<hex HMAC-SHA256 of the body>`` with the secret from ``DRIFTLINE_WEBHOOK_SECRET``.
A failed delivery (connection error, 5xx, 408, 429) is retried with exponential backoff
(0.5 s doubling to ``max_backoff_s``) until it succeeds; the record's offset is committed
only after that, so a forwarder that is killed or restarted delivers it again (at least
once: receivers deduplicate on ``ce-id``). Other 4xx answers are counted and skipped. The
processor never waits for a webhook: a sink that is down only makes this process lag.

>>> signature(b'{"id":"d1"}', b"secret")
'sha256=f0480af7d8768997a05460a40f0054b13315f821f43b57af3a6d9a524ea45d49'
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable

import orjson
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from driftline.client.records import Record
from driftline.config import DeploymentConfig
from driftline.runtime.reader import Reader

__all__ = ["signature", "WebhookSink", "forward"]

log = logging.getLogger("driftline.webhooks")

_RETRIED = {408, 429}


def signature(body: bytes, secret: bytes) -> str:
    """The ``X-Driftline-Signature`` of ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POST records to ``url`` as signed binary-mode CloudEvents, retrying until delivered."""

    def __init__(self, url: str, secret: bytes, model: str, timeout_s: float = 5.0, max_backoff_s: float = 30.0,
                 registry: CollectorRegistry = REGISTRY, sleep: Callable[[float], None] = time.sleep) -> None:
        if not secret:
            raise ValueError("a webhook secret is required (DRIFTLINE_WEBHOOK_SECRET)")
        self.url = url
        self.secret = secret
        self.model = model
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.delivered = 0
        self.failures = Counter("driftline_webhook_failures", "Webhook delivery attempts that failed",
                                ["model", "reason"], registry=registry)

    def deliver(self, record: Record) -> bool:
        """Deliver one record; False when the receiver refused it for good (a 4xx)."""
        body = orjson.dumps(record.value.body)
        headers = {"Content-Type": "application/json", "X-Driftline-Signature": signature(body, self.secret)}
        headers.update({f"ce-{k[3:]}": v for k, v in record.headers.items() if k.startswith("ce_")})
        backoff = 0.5
        while True:
            request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s):
                    self.delivered += 1
                    return True
            except urllib.error.HTTPError as exc:
                reason = str(exc.code)
                if exc.code < 500 and exc.code not in _RETRIED:
                    self.failures.labels(self.model, reason).inc()
                    log.warning("webhook refused an event", extra={"fields": {"ce_id": record.ce_id, "status": exc.code}})
                    return False
            except (urllib.error.URLError, OSError) as exc:
                reason = "unreachable" if isinstance(exc, urllib.error.URLError) else type(exc).__name__
            self.failures.labels(self.model, reason).inc()
            self.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)


def forward(config: DeploymentConfig, sink: WebhookSink, kinds: Iterable[str] = ("drift", "lifecycle"),
            group_id: str | None = None, idle_timeout: float | None = None) -> int:
    """Forward every new record of ``kinds`` to ``sink``; return how many were delivered.

    ``group_id`` (default ``<prefix>.<model>.webhooks``) keeps the position across restarts.
    Stops after ``idle_timeout`` seconds without a record on any topic (None: never).
    """
    group = group_id or f"{config.topic_prefix}.{config.name}.webhooks"
    readers = [Reader(config, kind, group_id=f"{group}.{kind}") for kind in kinds]
    delivered = 0
    last = time.monotonic()
    try:
        while idle_timeout is None or time.monotonic() - last < idle_timeout:
            for reader in readers:
                for record in reader.records(idle_timeout=0.2, max_records=100):
                    delivered += sink.deliver(record)
                    last = time.monotonic()
                reader.commit()
    finally:
        for reader in readers:
            reader.close()
    return delivered
