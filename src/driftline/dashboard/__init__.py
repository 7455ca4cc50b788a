"""The live page: ``GET /dashboard`` on the admin server, updated over Server-Sent Events."""

from driftline.dashboard.feed import FeedEvent, LiveFeed
from driftline.dashboard.sampler import Sampler, drift_summary

__all__ = ["LiveFeed", "FeedEvent", "Sampler", "drift_summary"]
