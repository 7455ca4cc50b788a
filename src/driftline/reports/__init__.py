"""Per-version drift reports: self-contained HTML with inline SVG, rebuilt from a stored version."""

from driftline.reports.build import lineage, version_report
from driftline.reports.data import report_data
from driftline.reports.render import render_html

__all__ = ["version_report", "lineage", "report_data", "render_html"]
