"""Fairness by group on the stream: counts, statistics, the monitor and its state changes."""

from driftline.core.fairness.counts import GroupCounts, GroupViews, Grouping
from driftline.core.fairness.monitor import FairnessMonitor, GroupTest, StateChange

__all__ = ["FairnessMonitor", "GroupCounts", "GroupTest", "GroupViews", "Grouping", "StateChange"]
