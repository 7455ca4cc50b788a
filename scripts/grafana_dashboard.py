#!/usr/bin/env python3
"""Build deploy/grafana/driftline.json, the Grafana dashboard of a Driftline deployment.

    .venv/bin/python scripts/grafana_dashboard.py          # rewrite deploy/grafana/driftline.json
    .venv/bin/python scripts/grafana_dashboard.py --check  # exit 1 if the committed file differs

Built with grafana-foundation-sdk (pinned in pyproject.toml, test extra). Every query reads a
series the processor exports or a recording rule of deploy/prometheus/rules.yml. The data
source is a `datasource` template variable: Grafana resolves `${DS_PROMETHEUS}` only in its
import UI, never from provisioning files. Drift events and version changes are annotations
on every time series panel; the serving-version panel links to the version's report on the
admin server (`$admin_url/versions/<n>/report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "deploy" / "grafana" / "driftline.json"
UID = "driftline"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
M = 'model=~"$model"'

# Panel queries whose series exist only once something happened (the integration test
# allows these, and only these, to come back empty from a live Prometheus).
NEEDS_EVENTS = {
    "Dead letters by reason": "a dead-lettered record",
    "Drift events": "a drift event",
    "Snapshot failures (30 min)": "a failed snapshot",
    "Backpressure pauses": "a paused input partition",
}
# The Scale-out row's panels read series only keyed or global deployments export (the
# integration test scrapes a single-mode run, where they are valid but empty).
NEEDS_MODE = {
    "Releases and heartbeats": "global", "Serving version per predictor": "global",
    "Watermark behind the wall clock": "global", "Stale and refused": "global",
    "Served accuracy per partition": "global",
    "Tasks per worker": "keyed", "Records per task": "keyed", "Keys in memory": "keyed",
    "Busiest keys": "keyed",
}


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)


def series(title: str, description: str, targets: list[prometheus.Dataquery], unit: str = "short",
           width: int = 12, **limits: float) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DS).unit(unit)
             .span(width).height(8).fill_opacity(10))
    for target in targets:
        panel = panel.with_target(target)
    if "min_val" in limits:
        panel = panel.min(limits["min_val"])
    if "max_val" in limits:
        panel = panel.max(limits["max_val"])
    return panel


def single(title: str, description: str, target: prometheus.Dataquery, unit: str = "short",
           links: list[dash.DashboardLink] | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DS).unit(unit).span(6).height(4)
             .with_target(target.instant()))
    if links:
        panel = panel.data_links(links)
    return panel


def new_events(counter: str, window: str) -> str:
    """Events of a counter in each ``window``, by model, kind and detector, counting series
    that appeared within it with their whole value (a detector's series appears with its
    first event, and increase() does not count a series' first sample)."""
    now = f"{counter}{{{M}}}"
    appeared = f"({now} unless {now} offset {window})"
    return (f"sum by (model, kind, detector) ((increase({now}[{window}]) unless {appeared}) or {appeared}) > 0")


def variables() -> list[Any]:
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dash.QueryVariable("model").label("Model").datasource(DS)
        .query("label_values(driftline_model_version, model)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*"),
        dash.QueryVariable("version").label("Version").datasource(DS)
        .description("The version serving now (the report link opens it); pick another number to open its report")
        .query('query_result(max by (model) (driftline_model_version{model=~"$model"}))')
        .regex(r"/} ([0-9]+) /").refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).allow_custom_value(True),
        dash.QueryVariable("variant").label("Variant").datasource(DS)
        .query('label_values(driftline_variant_metric{model=~"$model"}, variant)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True).all_value(".*"),
        dash.TextBoxVariable("admin_url").label("Admin API").description(
            "Where the processor's admin API answers (driftline run --admin-port), for the report links")
        .default_value("http://localhost:8001"),
    ]


def annotations() -> list[dash.AnnotationQuery]:
    return [
        dash.AnnotationQuery().name("Drift events").datasource(DS).enable(True).icon_color("red")
        .expr(new_events("driftline_drift_events_total", "1m")),
        dash.AnnotationQuery().name("Version changes").datasource(DS).enable(True).icon_color("blue")
        .expr(f"changes(driftline_model_version{{{M}}}[1m]) > 0"),
    ]


# Grafana's Prometheus annotation options that the SDK's AnnotationQuery does not carry.
ANNOTATION_FORMAT = {
    "Drift events": {"titleFormat": "{{kind}} drift on {{model}}", "textFormat": "detector {{detector}}",
                     "tagKeys": "model,kind,detector", "step": "1m"},
    "Version changes": {"titleFormat": "new version on {{model}}", "textFormat": "", "tagKeys": "model",
                        "step": "1m"},
}


def overview() -> list[Any]:
    report = (dash.DashboardLink("Report of this version").url("${admin_url}/versions/${__value.raw}/report")
              .target_blank(True))
    return [
        dash.Row("Overview"),
        single("Serving version", "The version stamped on predictions now; click for its report",
               query(f"max by (model) (driftline_model_version{{{M}}})", "{{model}}"), links=[report]),
        single("Predictions / s", "Predictions published per second (5 min rate)",
               query(f"model:driftline_predictions:rate5m{{{M}}}", "{{model}}"), unit="reqps"),
        single("Examples learned", "Labelled examples learned since the model started",
               query(f"driftline_examples_learned{{{M}}}", "{{model}}")),
        single("Version age", "Time since the newest stored version was cut",
               query(f"model:driftline_last_version:age_seconds{{{M}}}", "{{model}}"), unit="s"),
        series("Inputs / s", "Feature and label records read, by kind",
               [query(f"model_kind:driftline_events_in:rate5m{{{M}}}", "{{model}} {{kind}}")], unit="reqps"),
        series("Dead letters by reason", "Records sent to the dead-letter topic since the processor started, "
               "by dl_reason (a reason's series appears with its first record)",
               [query(f"sum by (model, reason) (driftline_dead_letters_total{{{M}}})", "{{model}} {{reason}}")]),
    ]


def quality() -> list[Any]:
    return [
        dash.Row("Quality"),
        series("Rolling metrics", "Online metrics over the last metrics_window labelled examples, with the "
               "lower edge of the 6 h band that DriftlineMetricBelowBand watches",
               [query(f'driftline_model_metric{{{M}, metric=~"rolling_.+"}}', "{{model}} {{metric}}"),
                query(f"model_metric:driftline_model_metric:band_low6h{{{M}}}", "{{model}} {{metric}} band low",
                      ref="B")]),
        series("Cumulative metrics", "Online metrics since the model started (test-then-train)",
               [query(f'driftline_model_metric{{{M}, metric!~"rolling_.+"}}', "{{model}} {{metric}}")]),
        series("Metrics by variant", "Rolling metrics of each serving variant (champion, canaries) on the "
               "events it served", [query(f'driftline_variant_metric{{{M}, variant=~"$variant", '
                                          f'metric=~"rolling_.+"}}', "{{variant}} {{metric}}")], width=24),
    ]


def drift() -> list[Any]:
    return [
        dash.Row("Drift"),
        series("Data drift statistic per feature", "Last KS statistic (numeric) or chi-square (categorical) "
               "per feature; the drift events of .drift are the annotations",
               [query(f"driftline_feature_drift_statistic{{{M}}}", "{{feature}} ({{test}})")]),
        series("Adjusted p-value per feature", "Below alpha (and PSI at least psi_min) the feature drifts",
               [query(f"driftline_feature_drift_p_value{{{M}}}", "{{feature}}")], min_val=0, max_val=1),
        series("Share of features drifting", "At 0.5 (dataset_share) DriftlineFeatureDriftShareHigh fires",
               [query(f"model:driftline_feature_drifting:share{{{M}}}", "{{model}}")], unit="percentunit",
               min_val=0, max_val=1),
        series("PSI per feature", "Population stability index on the reference-quantile bins",
               [query(f"driftline_feature_psi{{{M}}}", "{{feature}}")]),
        series("Drift events", "Drift events by kind and detector (concept, data, performance, importance)",
               [query(new_events("driftline_drift_events_total", "$__rate_interval"),
                      "{{model}} {{kind}} {{detector}}")], width=24),
    ]


def operations() -> list[Any]:
    hq = "histogram_quantile({q}, sum by (model, le) (rate({m}_bucket{{{sel}}}[$__rate_interval])))"
    return [
        dash.Row("Operations"),
        series("Consumer lag", "Messages behind the partition end, per input partition",
               [query(f"driftline_consumer_lag{{{M}}}", "{{model}} {{source}}")]),
        series("Join buffer", "Events waiting for their label (features) or their features (labels), and the "
               "share of inputs that expire unmatched",
               [query(f"driftline_join_pending{{{M}}}", "{{model}} pending {{side}}"),
                query(f"model:driftline_join_expired:ratio_rate10m{{{M}}}", "{{model}} expired per input", ref="B")]),
        series("Processing time", "Per transaction (p99) and per record (p50, p99)",
               [query(f"model:driftline_batch_seconds:p99_rate5m{{{M}}}", "{{model}} batch p99"),
                query(hq.format(q=0.5, m="driftline_record_seconds", sel=M), "{{model}} record p50", ref="B"),
                query(hq.format(q=0.99, m="driftline_record_seconds", sel=M), "{{model}} record p99", ref="C")],
               unit="s"),
        series("Snapshots", "Time to pickle, sign and write a version (p99), and versions cut",
               [query(hq.format(q=0.99, m="driftline_snapshot_seconds", sel=M), "{{model}} snapshot p99"),
                query(f"sum by (model, trigger) (increase(driftline_versions_total{{{M}}}[$__rate_interval]))",
                      "{{model}} versions ({{trigger}})", ref="B")], unit="s"),
        series("Snapshot failures (30 min)", "Failed snapshot writes in the last 30 minutes",
               [query(f"model:driftline_snapshot_failures:increase30m{{{M}}} > 0", "{{model}}")]),
        series("Backpressure pauses", "Input partitions paused because their event-time buffer was full",
               [query(f"sum by (model, source) (increase(driftline_backpressure_pauses_total{{{M}}}"
                      f"[$__rate_interval])) > 0", "{{model}} {{source}}")]),
    ]


def scale_out() -> list[Any]:
    return [
        dash.Row("Scale-out"),
        series("Releases and heartbeats", "Global mode: versions the trainer released and watermark heartbeats "
               "it sent, per minute", [
                   query(f"sum by (model) (rate(driftline_global_releases_total{{{M}}}[$__rate_interval])) * 60",
                         "{{model}} releases/min"),
                   query(f"sum by (model) (rate(driftline_global_heartbeats_total{{{M}}}[$__rate_interval])) * 60",
                         "{{model}} heartbeats/min", ref="B")]),
        series("Serving version per predictor", "Global mode: the newest version each predictor has verified "
               "and loaded; a predictor below the others cannot load releases",
               [query(f"driftline_global_serving_version{{{M}}}", "{{instance}}")]),
        series("Watermark behind the wall clock", "Global mode, live input: how far the trainer's watermark "
               "(the event time it has learned up to) is behind now; DriftlineTrainerStalled fires when it "
               "stops moving while predictors serve",
               [query(f"time() * 1000 - max by (model) (driftline_global_watermark_ms{{{M}}})", "{{model}}")],
               unit="ms"),
        series("Stale and refused", "Global mode: share of predictions served stale after max_wait_ms, and "
               "releases refused by predictors (bad signature, digest or order) in 15 min", [
                   query(f"model:driftline_global_stale_predictions:ratio_rate10m{{{M}}}", "{{model}} stale share"),
                   query(f"model:driftline_global_versions_refused:increase15m{{{M}}}", "{{model}} refused",
                         ref="B")]),
        series("Served accuracy per partition", "Global mode with [scale] served_labels: accuracy of the "
               "predictions users got, per input partition, and labels whose prediction the predictor did not "
               "serve (after a restart or a rebalance) per second", [
                   query(f"max by (model, partition) (driftline_served_accuracy{{{M}}})", "partition {{partition}}"),
                   query(f"sum by (model) (rate(driftline_served_labels_unmatched_total{{{M}}}[$__rate_interval]))",
                         "{{model}} unmatched labels/s", ref="B")]),
        series("Tasks per worker", "Keyed mode: the tasks (partition indices) each worker runs",
               [query(f"driftline_tasks{{{M}}}", "{{instance}}")]),
        series("Records per task", "Keyed mode: records each task routed to its keys, per second (skew "
               "across tasks)", [query(f"sum by (model, task) (rate(driftline_task_records{{{M}}}"
                                       f"[$__rate_interval]))", "task {{task}}")], unit="reqps"),
        series("Keys in memory", "Keyed mode: keys resident and evicted to the version store, and evictions and "
               "restores per second (DriftlineKeyChurn watches restores)", [
                   query(f"sum by (model, state) (driftline_keys{{{M}}})", "{{model}} {{state}}"),
                   query(f"sum by (model) (rate(driftline_key_evictions_total{{{M}}}[$__rate_interval]))",
                         "{{model}} evictions/s", ref="B"),
                   query(f"sum by (model) (rate(driftline_key_restores_total{{{M}}}[$__rate_interval]))",
                         "{{model}} restores/s", ref="C")]),
        series("Busiest keys", "Keyed mode: records of the top_keys busiest keys by name, and the busiest "
               "key over the mean per key (skew across keys)", [
                   query(f"max by (model, key) (driftline_top_key_records{{{M}}})", "{{key}}"),
                   query(f"max by (model) (driftline_key_records_max{{{M}}}) / "
                         f"max by (model) (driftline_key_records_mean{{{M}}})", "{{model}} max / mean", ref="B")]),
    ]


def build() -> dict[str, Any]:
    board = (dash.Dashboard("Driftline").uid(UID).tags(["driftline", "ml", "kafka"])
             .description("A Driftline deployment: throughput, online metrics, drift, versions and operations")
             .refresh("30s").time("now-3h", "now").timezone("browser").editable()
             .tooltip(model.DashboardCursorSync.CROSSHAIR))
    for variable in variables():
        board = board.with_variable(variable)
    for annotation in annotations():
        board = board.annotation(annotation)
    board = board.link(dash.DashboardLink("Report of version $version").type(model.DashboardLinkType.LINK)
                       .url("${admin_url}/versions/${version}/report").icon("doc").target_blank(True))
    for section in (overview(), quality(), drift(), operations(), scale_out()):
        for item in section:
            board = board.with_row(item) if isinstance(item, dash.Row) else board.with_panel(item)
    data = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for annotation in data["annotations"]["list"]:
        annotation.update(ANNOTATION_FORMAT.get(annotation["name"], {}))
    for number, panel in enumerate(data["panels"], start=1):  # stable ids, in layout order
        panel["id"] = number
    return data


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def panel_queries(board: dict[str, Any]) -> dict[str, list[str]]:
    """Every panel title with its query expressions (rows hold none)."""
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in board["panels"] if p["type"] != "row"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/grafana_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
