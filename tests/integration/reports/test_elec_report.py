"""The report of a version of a drifting Elec2 run on the real broker, written by
``driftline report`` from the version store alone, then rendered headless to PNG."""

from __future__ import annotations

import csv
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from driftline.cli import main
from driftline.runtime.processor import Processor
from driftline.runtime.replay import replay

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ELEC = ROOT.parent / "shared" / "data" / "elec.csv"
ARTIFACTS = ROOT / ".cache" / "artifacts"
FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def elec_rows(limit: int) -> list[tuple[dict[str, float], int]]:
    with ELEC.open() as fh:
        reader = csv.DictReader(fh)
        return [({k: float(row[k]) for k in FEATURES}, int(row["class"])) for row, _ in zip(reader, range(limit))]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found.append(tag)


def test_report_of_a_drifting_elec2_version(make_config, reader, signing_key, tmp_path, monkeypatch):
    config = make_config(
        model={"preset": "hoeffding_tree", "features": {f: "num" for f in FEATURES}, "classes": [0, 1]},
        checkpoint={"every_examples": 100_000, "background": False},
        # No rebase at each cut: the report shows the drift against the run's first reference.
        drift={"data": {"enabled": True, "rebase_on_version": False}},
    )
    rows = elec_rows(12_000)
    replay(config, rows, label_delay=50, n_rows=len(rows))
    processor = Processor(config, signing_key, registry=CollectorRegistry())
    processor.run(exit_when_idle_s=3)
    version = processor.store.latest()

    out = tmp_path / "report.html"
    monkeypatch.setenv(config.checkpoint.key_env, signing_key.decode())
    result = CliRunner().invoke(main, ["--name", config.name, "--store", config.checkpoint.store_url,
                                       "report", "--version", str(version), "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTIFACTS / "report-elec2.html")

    drift = [orjson.loads(m.value()) for m in reader(config, config.topics.drift)]
    assert {"data", "concept"} <= {d["kind"] for d in drift}
    # The timeline: exactly the .drift topic's events up to this version's cut.
    assert re.findall(r'<tr data-drift-id="([^"]+)">', html) == [d["id"] for d in drift if d["model_version"] < version]
    # One histogram per feature; rows sorted by statistic.
    assert len(re.findall(r"reference vs current</title>", html)) == len(FEATURES)
    rows_in_order = re.findall(r'data-feature="([^"]+)"><td><a href="#f-\d+">[^<]+</a></td><td>num</td>'
                               r'<td>ks</td>\s*<td class="n">([^<]+)</td>', html)
    assert sorted(name for name, _ in rows_in_order) == sorted(FEATURES)
    stats = [float(s) for _, s in rows_in_order]
    assert stats == sorted(stats, reverse=True)
    tags = Tags()
    tags.feed(html)
    assert not {"script", "link", "img", "iframe"} & set(tags.found)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: scripts/setup.sh installs it"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(out.as_uri())
        page.screenshot(path=str(ARTIFACTS / "report-elec2.png"), full_page=True)
        page.set_viewport_size({"width": 1100, "height": 1700})
        page.screenshot(path=str(ARTIFACTS / "report-elec2-top.png"))  # the picture in docs/monitoring.md
        browser.close()
    assert requests == [out.as_uri()]  # nothing but the file itself
    assert (ARTIFACTS / "report-elec2.png").stat().st_size > 10_000
