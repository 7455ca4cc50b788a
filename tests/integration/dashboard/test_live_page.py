"""The live page in a real browser (Debian's chromium driven by playwright) while a processor
learns a drifting stream on the real broker; then the version's report rendered to PNG.

Points appear and grow, a drift marker with the event's id appears, the version badge
changes after a cut, the console stays clean and no request leaves loopback. Screenshots
are kept in .cache/artifacts/.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.dashboard import LiveFeed, Sampler
from driftline.lifecycle.admin import AdminServer
from driftline.reports import version_report
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / ".cache" / "artifacts"
WAIT_MS = 90_000  # readiness bound for each browser wait (a failure, never a timing assertion)


def chromium() -> str:
    path = os.environ.get("DRIFTLINE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is missing: scripts/setup.sh installs it (apt-get install chromium)"
    return path


def until(check, what: str, page) -> None:
    """Poll ``check()`` (DOM reads from Playwright's isolated world: the page's CSP forbids eval)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not check():
        assert time.monotonic() < deadline, f"the page never showed {what}"
        page.wait_for_timeout(100)


def drifting_rows(n: int = 9000, change: int = 4500, seed: int = 5):
    """x shifts by one sigma and the concept flips at ``change``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x, z = rng.gauss(1.0 if i >= change else 0.0, 1), rng.gauss(0, 1)
        y = (x + z > 0) if i < change else (x + z < 1)
        rows.append(({"x": x, "z": z}, y))
    return rows


def test_live_page_follows_a_drifting_stream(make_config, reader, signing_key):
    from playwright.sync_api import sync_playwright

    config = make_config(
        model={"preset": "logistic_regression", "features": {"x": "num", "z": "num"}},
        checkpoint={"every_examples": 2000, "drift_min_seconds": 0, "background": False},
        drift={"metrics_window": 200, "data": {"enabled": True}},
    )
    rows = drifting_rows()
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    feed = LiveFeed()
    sampler = Sampler(feed, lambda: processor.engine, processor.membership.state, interval_s=0.25)
    admin = AdminServer(config.name, processor.lifecycle.registry, processor.lifecycle.queue.submit,
                        processor.store, token=None, feed=feed)
    port = admin.start()
    runner = threading.Thread(target=processor.run, kwargs={"max_seconds": 240}, daemon=True)
    producer = threading.Thread(target=replay, args=(config, rows), kwargs={"label_delay": 10, "rate": 600},
                                daemon=True)
    url = f"http://127.0.0.1:{port}/dashboard"
    console_errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        runner.start()
        sampler.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            badge_of = lambda: page.text_content("#version-badge")  # noqa: E731
            until(lambda: badge_of() != "v-", "a version badge", page)
            first_badge = badge_of()
            producer.start()
            points = lambda: int(page.get_attribute("#metrics", "data-points"))  # noqa: E731
            until(lambda: points() >= 3, "points", page)
            seen = points()
            until(lambda: points() > seen, "more points", page)
            page.wait_for_selector("#drift-list [data-drift-id]", timeout=WAIT_MS)
            until(lambda: badge_of() != first_badge, "a new version", page)
            producer.join(120)
            until(lambda: page.locator("#feature-table tbody tr").count() == 2, "the data-drift state", page)
            page.wait_for_timeout(1500)  # let the last ticks draw before the screenshot
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            markers = page.locator("#drift-list [data-drift-id]")
            marker_ids = [markers.nth(i).get_attribute("data-drift-id") for i in range(markers.count())]
            badge = badge_of()
            processor.stop()
            runner.join(120)
            # The report of the latest version, rebuilt from the store, rendered headless.
            latest = processor.store.latest()
            html = version_report(processor.store, latest)
            (ARTIFACTS / "report.html").write_text(html)
            report_page = browser.new_page(viewport={"width": 1100, "height": 900})
            report_page.on("request", lambda r: requests.append(r.url))
            report_page.goto(f"http://127.0.0.1:{port}/versions/{latest}/report")
            report_page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            browser.close()
    finally:
        processor.stop()
        sampler.stop()
        admin.stop()
    assert not console_errors, console_errors
    hosts = {urlparse(u).hostname for u in requests}
    assert hosts == {"127.0.0.1"}, hosts
    drift = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    assert marker_ids and set(marker_ids) <= {d["id"] for d in drift}
    assert {"concept", "data"} <= {d["kind"] for d in drift}
    assert badge != first_badge
    # The report's timeline equals the .drift topic's events up to the version's cut.
    cut = processor.store.meta(latest)["examples_seen"]
    expected = [d["id"] for d in drift if d["model_version"] < latest and d["position"] <= cut]
    assert re.findall(r'<tr data-drift-id="([^"]+)">', html) == expected
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
