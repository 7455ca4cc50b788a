"""Prometheus metrics and structured JSON logs."""

from driftline.observability.logs import configure_logging
from driftline.observability.metrics import ProcessorMetrics

__all__ = ["ProcessorMetrics", "configure_logging"]
