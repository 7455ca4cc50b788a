"""deploy/grafana: the dashboard is what scripts/grafana_dashboard.py builds, its queries are
PromQL over metrics the processor exports, and the provisioning files fit together. A live
Prometheus answering every query: tests/integration/observability/test_dashboard_queries.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
BOARD = json.loads((GRAFANA / "driftline.json").read_text())
RECORDED = {r["record"] for g in yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
            for r in g["rules"] if "record" in r}


def promql(expr: str) -> str:
    """A panel query as Prometheus receives it: Grafana's interval macros filled in."""
    return re.sub(r"\$__(rate_)?interval", "1m", expr)


def all_queries() -> list[str]:
    panels = [t["expr"] for p in BOARD["panels"] for t in p.get("targets", [])]
    return panels + [a["expr"] for a in BOARD["annotations"]["list"]]


def test_the_committed_dashboard_is_what_the_script_builds(grafana_dashboard) -> None:
    assert grafana_dashboard.render() == (GRAFANA / "driftline.json").read_text(), \
        "deploy/grafana/driftline.json is stale: run .venv/bin/python scripts/grafana_dashboard.py"
    assert grafana_dashboard.main(["--check"]) == 0


@pytest.mark.parametrize("expr", all_queries())
def test_every_query_parses_as_promql_and_reads_exported_metrics(expr, selector_names, exported_metrics) -> None:
    names = selector_names(promql(expr))  # raises on a syntax error
    assert names and not names - exported_metrics - RECORDED, sorted(names - exported_metrics - RECORDED)


def test_variables_use_promql_too(selector_names, exported_metrics) -> None:
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    assert {"datasource", "model", "version", "variant"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("model", "version", "variant"):
        inner = re.fullmatch(r"(?:label_values|query_result)\((.+?)(?:, \w+)?\)", variables[name]["query"]).group(1)
        assert selector_names(inner) <= exported_metrics


def test_every_panel_reads_the_datasource_variable_and_no_import_placeholder() -> None:
    text = (GRAFANA / "driftline.json").read_text()
    assert "DS_PROMETHEUS" not in text and "__inputs" not in text
    for panel in BOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_rows_and_annotations() -> None:
    assert [p["title"] for p in BOARD["panels"] if p["type"] == "row"] == ["Overview", "Quality", "Drift", "Operations",
                                                                            "Scale-out"]
    assert [a["name"] for a in BOARD["annotations"]["list"]] == ["Drift events", "Version changes"]
    ids = [p["id"] for p in BOARD["panels"]]
    assert len(set(ids)) == len(ids)


def test_only_the_scale_out_row_may_need_a_keyed_or_global_deployment(grafana_dashboard) -> None:
    titles = [p["title"] for p in BOARD["panels"]]
    row = titles.index("Scale-out")
    assert set(grafana_dashboard.NEEDS_MODE) == set(titles[row + 1:])
    assert set(grafana_dashboard.NEEDS_MODE.values()) == {"keyed", "global"}


def test_the_version_panel_and_the_dashboard_link_to_the_report() -> None:
    version = next(p for p in BOARD["panels"] if p["title"] == "Serving version")
    assert version["fieldConfig"]["defaults"]["links"][0]["url"] == "${admin_url}/versions/${__value.raw}/report"
    assert BOARD["links"][0]["url"] == "${admin_url}/versions/${version}/report"


def test_the_panels_allowed_to_be_empty_exist(grafana_dashboard) -> None:
    titles = set(grafana_dashboard.panel_queries(BOARD))
    assert set(grafana_dashboard.NEEDS_EVENTS) <= titles


def test_provisioning_points_at_the_dashboard() -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "driftline.yml").read_text())
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    boards = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "driftline.yml").read_text())
    (provider,) = boards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/driftline")
