"""Turn a suite result (bench-results/latest.json) into tables, docs/benchmarks.md and a plot.

Usage: python scripts/bench/render.py [results.json] [--docs] [--png docs/benchmarks.png]

Without ``--docs`` the tables are only printed. With it, ``docs/benchmarks.md`` is rewritten
from the results; the text between ``<!-- notes -->`` and ``<!-- /notes -->`` (hand-written
reading of the numbers) is kept from the previous file, and so is everything after
``<!-- /notes -->`` (sections measured separately, e.g. keyed-mode scaling).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SHORT = {"logistic_regression": "logistic regression", "hoeffding_tree": "Hoeffding tree",
         "adaptive_random_forest": "adaptive random forest (10 trees)"}
GOAL = {"logistic_regression": 0.75, "hoeffding_tree": 0.9, "adaptive_random_forest": 0.9}
PEERS = [("confluent-poll", "confluent-kafka poll()"), ("confluent-batch", "confluent-kafka consume(500)"),
         ("faust", "faust-streaming agent")]


def _n(v, fmt="{:,.0f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def _eps(r: dict | None, ratio: bool = True) -> str:
    if not r:
        return "–"
    if "error" in r:
        return "failed¹"
    s = _n(r.get("eps"))
    if ratio and r.get("ratio") is not None:
        s += f" ({r['ratio']:.2f})"
    if r.get("complete") is False:
        s += " incomplete"
    return s


def _short_path(function: str) -> str:
    """A profiled function without the machine's install prefix.

    >>> _short_path("/opt/py/lib/python3.11/copy.py:128(deepcopy)")
    'python3.11/copy.py:128(deepcopy)'
    """
    return re.sub(r"^.*/(?=python3\.\d+/|site-packages/)", "", function)


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def tables(res: dict) -> str:
    parts = []
    tp = res.get("throughput", [])
    if tp:
        rows = []
        for e in tp:
            d = e.get("driftline", {})
            rows.append([SHORT.get(e["model"], e["model"]), _n(e["events"]), _eps(e.get("limit"), False),
                         _eps(d, False), _n(d.get("ratio"), "{:.2f}") + f" (goal {GOAL.get(e['model'], 0):.2f})",
                         _eps(e.get("driftline_lean")) if e.get("driftline_lean") else "–",
                         *[_eps(e.get(k)) for k, _ in PEERS],
                         " / ".join(_n((e.get(k) or {}).get("accuracy"), "{:.3f}") for k in ("limit", "driftline", "confluent-poll", "faust"))])
        parts.append("### Throughput (events/s, ratio to River's bare loop in parentheses)\n\n" + table(
            ["model", "events", "River bare loop (limit)", "Driftline end to end", "Driftline / limit",
             "Driftline, no detectors, at-least-once", *[label for _, label in PEERS],
             "accuracy: limit / Driftline / confluent / faust"], rows)
            + "\n\nDriftline runs with its defaults (exactly-once, drift detection with the `reset` policy, "
            "every metric on). The next column switches off what the peers do not do either (drift "
            "detectors and adaptation; transactions: at-least-once); validation, the event-time merge, "
            "online metrics, dead letters and CloudEvents headers stay on.")
        errors = [f"{e['model']} {k}: `{v['error'][-300:]}`" for e in tp for k, v in e.items()
                  if isinstance(v, dict) and "error" in v]
        if errors:
            parts.append("¹ " + "<br>".join(e.replace("\n", " ") for e in errors))
    mb = [e for e in tp if "limit_minibatch" in e or "driftline_minibatch" in e]
    if mb:
        rows = []
        for e in mb:
            lm, dm = e.get("limit_minibatch") or {}, e.get("driftline_minibatch") or {}
            parts_us = " / ".join(_n(lm.get(k), "{:.2f}") for k in ("build_us", "predict_many_us", "learn_many_us"))
            ours = _eps(dm) + ("" if dm.get("mini_batch", True) or "error" in dm else " not batched²")
            rows.append([SHORT.get(e["model"], e["model"]), _n(e["events"]), _n(dm.get("batch") or lm.get("batch")),
                         _eps(e.get("limit"), False), _eps(lm), parts_us, _eps(e.get("driftline")), ours,
                         " / ".join(_n((e.get(k) or {}).get("accuracy"), "{:.3f}")
                                    for k in ("limit", "limit_minibatch", "driftline", "driftline_minibatch"))])
        parts.append("### Mini-batch mode (events/s, ratio to River's bare one-at-a-time loop in parentheses)\n\n" + table(
            ["model", "events", "batch", "River one at a time (limit)", "River learn_many/predict_many loop",
             "its µs per event: frame / predict_many / learn_many", "Driftline one at a time",
             "Driftline `model.mini_batch`", "accuracy: limit / River mini-batch / Driftline / Driftline mini-batch"], rows)
            + "\n\nRiver's mini-batch loop predicts a batch with `predict_many`, then learns it with `learn_many`; "
            "Driftline's mini-batch mode predicts each event one at a time and learns every `batch` joined "
            "examples with one `learn_many` (docs/minibatch.md). Its deployment declares the features "
            "(mini-batch mode requires it), the one-at-a-time deployment does not.")
        if any(not (e.get("driftline_minibatch") or {}).get("mini_batch", True) for e in mb):
            parts.append("² the engine of this run has no mini-batch mode yet: the config was accepted and "
                         "every example was learned one at a time")
    lat = res.get("latency", [])
    if lat:
        rows = [[SHORT.get(e["model"], e["model"]), e.get("guarantee", "exactly_once").replace("_", "-"),
                 f"{e['fraction']:.0%} of {_n(e.get('max_eps'))}",
                 _n(e.get("actual_rate")), _n(e.get("p50"), "{:.1f}"), _n(e.get("p95"), "{:.1f}"),
                 _n(e.get("p99"), "{:.1f}"), _n(e.get("max"), "{:.1f}"),
                 " / ".join(_n((e.get("produce_ack") or {}).get(q), "{:.1f}") for q in ("p50", "p99", "max")),
                 f"{e.get('seen', 0)}/{e.get('measured', 0)}"
                 + (f" {e['error']}" if "error" in e else "")] for e in lat]
        parts.append("### Latency: feature produced → prediction visible to a read_committed consumer (ms)\n\n" + table(
            ["model", "guarantee", "offered load (ev/s)", "achieved ev/s", "p50", "p95", "p99", "max",
             "produce→ack p50 / p99 / max", "seen/measured"], rows)
            + "\n\nexactly-once: the prediction is visible when its transaction commits; at-least-once: as soon "
            "as the broker has it (`processor.guarantee`, docs/events.md). produce→ack: the load generator's "
            "own feature events from `produce()` to the broker's acknowledgement (every 50th), in the same "
            "run: the part of the latency spent before Driftline can read the event at all.")
    scaling = res.get("scaling") or {}
    if scaling.get("throughput"):
        base = {e["preset"]: e["eps"] for e in scaling["throughput"] if e["workers"] == 1}
        rows = [[e["preset"], str(e["workers"]), _n(e["eps"]), f"{e['eps'] / base[e['preset']]:.2f}x",
                 _n(e.get("eps_per_worker_cpu_s")), " + ".join(f"{c:.2f}" for c in e.get("worker_cores", [])) or "–",
                 _n(e.get("broker_cores"), "{:.2f}"), _n(e.get("other_cores"), "{:.2f}"),
                 "–" if "load_start" not in e else f"{e['load_start'][0]:.1f}", f"{e['learned']}/{e['events']}"]
                for e in scaling["throughput"]]
        fo = [f"{f['failover_s']} s after kill -9 of one of two workers ({f['preset']}, session timeout "
              f"{f['session_timeout_ms']} ms, {_n(f['rate'])} ev/s offered; end-to-end latency p50 "
              f"{f['latency_p50_s']} s, max {f['latency_max_s']} s)" for f in scaling.get("failover", [])]
        rb = [f"a third worker joining two under {_n(r['rate'])} ev/s: lowest 1 s bin {r['join']['lowest_bin_per_s']}, "
              f"back to 90% after {r['join']['recovered_after_s']} s; leaving (SIGTERM): lowest "
              f"{r['leave']['lowest_bin_per_s']}, back after {r['leave']['recovered_after_s']} s; aborted "
              f"transactions {r['aborted_transactions']}; {r['predicted']}/{r['events']} predicted"
              for r in scaling.get("rebalance", [])]
        parts.append("### Keyed mode: worker processes (8 partitions, 1,000 keys, labels 100 events late, "
                     "input pre-loaded)\n\n"
                     + table(["model", "workers", "events/s", "vs 1 worker", "events per worker-CPU-s",
                              "worker cores", "broker cores", "other cores", "load 1 min", "learned"], rows)
                     + "\n\nCPU from /proc over the window from the first record to the last commit "
                     "(scripts/bench/scaling.py); other cores: the rest of the box (other jobs)."
                     + ("\n\nfail-over: " + "; ".join(fo) if fo else "")
                     + ("\n\nrebalance: " + "; ".join(rb) if rb else ""))
    if scaling.get("global_rates"):
        g = scaling["global_rates"]
        bare = g["river_bare_loop_per_s"]
        cells = [("River's bare predict+learn loop", "river_bare_loop_per_s"),
                 ("trainer's engine alone (no Kafka)", "trainer_engine_alone_per_s"),
                 ("single-mode processor", "single_mode_processor_per_s"),
                 ("trainer, run 1", "trainer_per_s_run1"), ("trainer, run 2", "trainer_per_s_run2"),
                 ("trainer, learn_share 0.25 (labels handled)", "trainer_learn_share_0.25_labels_per_s"),
                 ("1 predictor", "predictors_1_per_s"), ("2 predictors", "predictors_2_per_s")]
        rows = [[name, _n(g[key]), f"{g[key] / bare:.2f}"] for name, key in cells if key in g]
        parts.append(f"### Global mode: rates ({g['model']}, {_n(g['events'])} events pre-loaded, 4 partitions)\n\n"
                     + table(["", "per second", "vs River's bare loop"], rows)
                     + "\n\nscripts/bench/global_mode.py; the goals: trainer >= 0.9x the bare loop, "
                     "1 predictor >= 2x the trainer.")
    if scaling.get("global_propagation"):
        rows = [[g["model"], _n(g["rate_per_s"]), str(g["versions_released"]),
                 f"{g['per_partition_ms']['p50']} / {g['per_partition_ms']['p99']}",
                 f"{g['all_predictors_ms']['p50']} / {g['all_predictors_ms']['p99']}",
                 f"{g['load_1min']:.1f}"] for g in scaling["global_propagation"]]
        parts.append("### Global mode: version propagation (trainer + 2 predictors, 4 partitions, "
                     "staleness latest)\n\n"
                     + table(["model", "events/s", "versions", "per partition p50 / p99 ms",
                              "all predictors p50 / p99 ms", "load 1 min"], rows)
                     + "\n\nfrom the release record's CreateTime on `.versions` to the first prediction "
                     "carrying that version (its `predicted_at`), per input partition; \"all predictors\" "
                     "is the max over the 4 partitions (scripts/bench/global_mode.py --propagation).")
    rule = res.get("label_rule", [])
    if rule:
        rows = []
        for e in rule:
            wait = e.get("label_wait_ms") or {}
            merge = e.get("merge") or {}
            rows.append([f"{e['fraction']:.0%} of {_n(e.get('max_eps'))}", "on" if e.get("label_rule") else "off",
                         _n(e.get("actual_rate")), _n(e.get("p50"), "{:.1f}"), _n(e.get("p99"), "{:.1f}"),
                         _n(wait.get("p50"), "{:.2f}"), _n(wait.get("p99"), "{:.2f}"),
                         _n(merge.get("late_labels")) if e.get("label_rule") else "–", f"{e.get('seen', 0)}/{e.get('measured', 0)}"
                         + (f" {e['error']}" if "error" in e else "")])
        parts.append("### The live label rule: what it costs predictions, how long it holds labels "
                     "(logistic regression, exactly-once, 3 partitions, labels 100 events late, ms)\n\n" + table(
            ["offered load (ev/s)", "label rule", "achieved ev/s", "prediction p50", "prediction p99",
             "label wait p50", "label wait p99", "late labels", "seen/measured"], rows)
            + "\n\nlabel rule on: a label is learned only once every features partition has passed its time "
            "(docs/events.md, Ordering); off: the merge before it, in which future labels could leak into "
            "predictions (a bench-only switch). label wait: `driftline_label_wait_seconds`, from a label's fetch "
            "to its learning, quantiles from the histogram's buckets. late labels: labels learned after a "
            "feature with an equal or later time was predicted (`driftline_merge_late_labels_total`; not counted "
            "with the rule off). The load generator sends each label just before a feature without waiting for "
            "its acknowledgement, so a label can be fetched after features stamped later: those are the late ones.")
    snap = res.get("snapshots", [])
    if snap:
        rows = [[e["case"], _n(e.get("actual_rate")), _n(e.get("p50"), "{:.1f}"), _n(e.get("p95"), "{:.1f}"),
                 _n(e.get("p99"), "{:.1f}"), _n(e.get("max"), "{:.1f}"), str(e.get("snapshots", "–")),
                 _n(e.get("snapshot_max_bytes", 0) / 1e6, "{:.1f}")] for e in snap]
        data = snap[0].get("data", "elec")
        parts.append(f"### Latency while snapshots are cut (adaptive random forest on `{data}`, "
                     f"50% of its max {_n(snap[0].get('max_eps'))} ev/s, ms)\n\n" + table(
            ["case", "achieved ev/s", "p50", "p95", "p99", "max", "versions cut", "largest snapshot MB"], rows))
        for e in snap[1:]:
            if snap[0].get("p99") and e.get("p99"):
                parts.append(f"- {e['case']}: p99 / steady p99 = **{e['p99'] / snap[0]['p99']:.2f}×** (goal ≤ 2×)")
    stall = res.get("snapshot_stall")
    if stall and "inline" in stall and "forked" in stall:
        rows = [[mode, _n(stall[mode].get("mb"), "{:.1f}"), _n(stall[mode].get("blocked_ms"), "{:.1f}"),
                 _n(stall[mode].get("save_ms"), "{:.0f}"), _n(stall[mode].get("predicted_meanwhile"))]
                for mode in ("inline", "forked")]
        parts.append(f"### How long one version cut holds up the loop (forest after {stall['n']:,} `{stall['data']}` "
                     "events, engine only)\n\n" + table(
                         ["writer", "snapshot MB", "loop blocked ms", "save ms", "predictions made meanwhile"], rows))
    feats = res.get("features", [])
    if feats:
        rows = [[str(e["features"]), _n(e["events"]), _eps(e.get("limit"), False), _eps(e.get("driftline"), False),
                 _n((e["driftline"].get("eps") or 0) / e["limit"]["eps"] if e["limit"].get("eps") and e["driftline"].get("eps") else None, "{:.2f}"),
                 _n(e["limit"].get("rss_mb")), _n(e["driftline"].get("rss_mb"))] for e in feats]
        parts.append("### Cost against the number of features (synthetic N(0,1), logistic regression, label delay 100)\n\n" + table(
            ["features", "events", "limit ev/s", "Driftline ev/s", "ratio", "limit peak RSS MB", "Driftline peak RSS MB"], rows))
    join = res.get("join", {})
    if join.get("e2e"):
        rows = [[_n(e["delay"]), _n(e["events"]), _eps(e.get("limit"), False), _eps(e.get("driftline"), False),
                 _n((e["driftline"].get("eps") or 0) / e["limit"]["eps"] if e["limit"].get("eps") and e["driftline"].get("eps") else None, "{:.2f}"),
                 _n(e["limit"].get("rss_mb")), _n(e["driftline"].get("rss_mb"))] for e in join["e2e"]]
        parts.append("### Cost against the join buffer (label delay = events pending; synthetic, 10 features, logistic regression)\n\n" + table(
            ["label delay (pending)", "events", "limit ev/s", "Driftline ev/s", "ratio", "limit peak RSS MB", "Driftline peak RSS MB"], rows))
    if join.get("memory"):
        rows = [[_n(e.get("pending", e.get("requested"))), _n(e.get("bytes_per_pending")), _n(e.get("rss_mb")),
                 _n(e.get("eps")) + (f" {e['error']}" if "error" in e else "")] for e in join["memory"]]
        parts.append("### Bytes per pending event (engine only, no Kafka: features that wait for a label; 10 features)\n\n" + table(
            ["pending events", "bytes per pending event", "process RSS MB", "predict+buffer ev/s"], rows))
    prof = res.get("profile", [])
    for e in prof:
        if "error" in e:
            parts.append(f"### Profile {e['model']}: failed: `{e['error'][-300:]}`")
            continue
        rows = [[f"`{_short_path(r['function'])}`", _n(r["calls"]), _n(r["self_s"], "{:.3f}"), _n(r["self_pct"], "{:.1f}"),
                 _n(r["cum_s"], "{:.3f}")] for r in e["top_self"][:15]]
        parts.append(f"### Profile: {SHORT.get(e['model'], e['model'])}, Elec2 {e['events']:,} events "
                     f"(cProfile, {e['profiled_s']:.1f} s of self time; top 15 by self time; full text in `{e['text']}`)\n\n"
                     + table(["function", "calls", "self s", "self %", "cumulative s"], rows)
                     + "\n\nSelf time by area: " + ", ".join(f"{k} {v:.0f}%" for k, v in e.get("areas", {}).items()))
    return "\n\n".join(parts)


def goals(res: dict) -> str:
    lines = []
    for e in res.get("throughput", []):
        r = e.get("driftline", {}).get("ratio")
        if r is not None:
            ok = r >= GOAL.get(e["model"], 1)
            lines.append(f"- {SHORT.get(e['model'], e['model'])}: Driftline / limit = {r:.2f} "
                         f"(goal ≥ {GOAL.get(e['model'])}): **{'met' if ok else 'not met'}**")
            peers = {k: (e.get(k) or {}).get("eps") for k, _ in PEERS}
            beat = [k for k, v in peers.items() if v and e["driftline"].get("eps", 0) > v]
            lost = [k for k, v in peers.items() if v and e["driftline"].get("eps", 0) <= v]
            lines.append(f"  - ahead of: {', '.join(beat) or 'none'}; behind: {', '.join(lost) or 'none'}")
            lean = (e.get("driftline_lean") or {}).get("eps")
            if lean:
                beat = [k for k, v in peers.items() if v and lean > v]
                lost = [k for k, v in peers.items() if v and lean <= v]
                lines.append(f"  - without drift detection, at-least-once ({lean:,.0f} ev/s): ahead of: "
                             f"{', '.join(beat) or 'none'}; behind: {', '.join(lost) or 'none'}")
    for e in res.get("latency", []):
        if e["fraction"] == 0.5 and e.get("p99") is not None:
            lines.append(f"- p99 at 50% load, {SHORT.get(e['model'])}, {e.get('guarantee', 'exactly_once').replace('_', '-')}: "
                         f"{e['p99']:.1f} ms (goal < 20 ms): **{'met' if e['p99'] < 20 else 'not met'}**")
    snap = res.get("snapshots", [])
    for e in snap[1:]:
        if snap[0].get("p99") and e.get("p99"):
            x = e["p99"] / snap[0]["p99"]
            lines.append(f"- p99 while cutting snapshots ({e['case']}, largest {e.get('snapshot_max_bytes', 0) / 1e6:.0f} MB) "
                         f"/ steady p99: {x:.2f}× (goal ≤ 2×): **{'met' if x <= 2 else 'not met'}**")
    for v in (res.get("scaling") or {}).get("verdict", []):
        need = v["cores_needed_for_goal"]
        lines.append(f"- keyed mode, 2 workers / 1 worker, {SHORT.get(v['preset'], v['preset'])}: {v['ratio']:.2f}× "
                     f"(goal ≥ {v['goal']}×): **{'met' if v['met'] else 'not met'}**"
                     + ("" if v.get("conclusive", True) else
                        f" (not conclusive: other jobs took up to {v.get('other_cores_max')} cores)")
                     + f"; per-CPU efficiency kept "
                     f"{v['efficiency_kept']:.2f}; {v['goal']}× would need {need['total']} cores "
                     f"(workers {need['workers']} + broker {need['broker']}), against a 1-worker baseline "
                     f"with a whole core {v.get('cores_needed_for_goal_vs_a_whole_core', {}).get('total', '–')} cores")
    measured = False
    for e in res.get("throughput", []):
        dm, lm = e.get("driftline_minibatch"), e.get("limit_minibatch") or {}
        if not dm:
            continue
        measured = True
        bare = f"; River's own learn_many/predict_many loop: {lm['ratio']:.2f}×" if lm.get("ratio") else ""
        if "error" in dm or dm.get("ratio") is None:
            lines.append(f"- mini-batch mode ≥ 2× the bare one-at-a-time loop, {SHORT.get(e['model'])}: "
                         f"**not measured** (the run failed){bare}")
        elif not dm.get("mini_batch", True):
            lines.append(f"- mini-batch mode ≥ 2× the bare one-at-a-time loop, {SHORT.get(e['model'])}: "
                         f"**not measured**: this run's engine has no mini-batch mode (it learned one at a "
                         f"time: {dm['ratio']:.2f}×){bare}")
        else:
            lines.append(f"- mini-batch mode ≥ 2× the bare one-at-a-time loop, {SHORT.get(e['model'])}: Driftline "
                         f"with `mini_batch` = {dm.get('batch')} end to end = {dm['ratio']:.2f}×: "
                         f"**{'met' if dm['ratio'] >= 2 else 'not met'}**{bare}")
    if not measured:
        lines.append("- mini-batch mode ≥ 2× the bare one-at-a-time loop: not measured by this run "
                     "(the throughput section did not run for logistic regression)")
    return "\n".join(lines)


def plot(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0][0]
    tp = res.get("throughput", [])
    series = [("limit", "River bare loop"), ("driftline", "Driftline"), *PEERS,
              ("limit_minibatch", "River learn_many loop"), ("driftline_minibatch", "Driftline mini_batch")]
    width = 0.8 / len(series)
    for j, (k, label) in enumerate(series):
        vals = [(e.get(k) or {}).get("eps") or 0 for e in tp]
        ax.bar([i + j * width for i in range(len(tp))], vals, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tp))])
    ax.set_xticklabels([e["model"].replace("_", "\n") for e in tp], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("events/s (log)")
    ax.set_title("Throughput on Elec2")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    for model, guarantee in sorted({(e["model"], e.get("guarantee", "exactly_once")) for e in res.get("latency", [])}):
        pts = [e for e in res["latency"] if e["model"] == model and e.get("guarantee", "exactly_once") == guarantee]
        tag = "EOS" if guarantee == "exactly_once" else "ALOS"
        for q, style in (("p50", "-o"), ("p99", "--s")):
            ax.plot([e["fraction"] * 100 for e in pts], [e.get(q) for e in pts], style, label=f"{SHORT.get(model, model)} {tag} {q}")
    snap = res.get("snapshots", [])
    if snap:
        ax.scatter([50] * len(snap), [e.get("p99") for e in snap], marker="x", color="k", label="ARF p99 (steady, inline, forked)")
    ax.set_xlabel("load, % of Driftline's max")
    ax.set_ylabel("ms (log)")
    ax.set_yscale("log")
    ax.set_title("Produce → prediction committed")
    ax.legend(fontsize=7)
    ax = axes[1][0]
    feats = res.get("features", [])
    if feats:
        xs = [e["features"] for e in feats]
        ax.plot(xs, [e["limit"].get("eps") for e in feats], "-o", label="River loop ev/s")
        ax.plot(xs, [e["driftline"].get("eps") for e in feats], "-s", label="Driftline ev/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("features")
        ax.set_ylabel("events/s")
        ax2 = ax.twinx()
        ax2.plot(xs, [e["driftline"].get("rss_mb") for e in feats], ":^", color="gray", label="Driftline RSS MB")
        ax2.set_ylabel("peak RSS MB")
        ax.legend(fontsize=7, loc="lower left")
        ax2.legend(fontsize=7, loc="upper right")
    ax.set_title("Cost vs features (logistic regression)")
    ax = axes[1][1]
    mem = res.get("join", {}).get("memory", [])
    if mem:
        ax.plot([e.get("pending", 0) for e in mem], [e.get("bytes_per_pending") for e in mem], "-o")
        ax.set_xscale("log")
        ax.set_xlabel("pending events")
        ax.set_ylabel("bytes per pending event")
        ax.set_ylim(bottom=0)
    ax.set_title("Join buffer memory (10 features)")
    fig.suptitle(f"Driftline benchmarks, {res.get('date')}, {res['machine'].get('cpus')} CPUs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=60)


HEADER = """# Benchmarks

Generated by `{command}` ({mode} run) on {date}; re-run it to refresh every number below.
Machine: {cpus} CPUs ({cpu}), {ram} GB RAM, {platform}; Python {python}, River {river},
Kafka {kafka} (single local KRaft broker on loopback, same machine). Code: commit `{commit}`
with {dirty} uncommitted files under `src/` at the time of the run (the hot path is being
optimised concurrently, so numbers move). Load average at start: {load}. Whole run:
{total:.0f} s. Raw results: `bench-results/latest.json`.

![throughput and latency](benchmarks.png)

## How it is measured

- **The limit** is River's own `predict_one` + `learn_one` loop in memory on the same events
  in the same order: the model learns event `i - delay` just before predicting event `i`
  (labels before features at equal event times), exactly the order Driftline processes the
  pre-loaded topics in.
- **Driftline end to end**: a fresh deployment's features and labels topics are pre-loaded
  (labels `delay` events after their features), then the processor runs from its first
  read until the last label is learned and the last prediction committed
  (`Processor.timings`: `last_commit - first_record`; start-up, fencing and the final idle
  wait are excluded). Exactly-once: outputs and offsets in Kafka transactions; snapshots
  are off in this table (every 10M examples).
- **Peers** read the same pre-loaded topics, with the same River models, and publish one
  prediction per feature event to their own topic. They are **at-least-once**, without
  transactions: the confluent-kafka loop commits offsets synchronously every 1000
  messages (after flushing its producer); the faust agent uses faust's default
  `at_least_once` commits. Neither orders by event time (they join in arrival order, which
  is why their accuracy differs), and their join state is an in-process dict that a crash
  loses. Both use orjson, as Driftline does. When this was measured faust-streaming could not be
  installed next to Driftline (0.15.3 requires `click<8.4`; Driftline then pinned 8.5.1, now
  8.3.3 with a `faust` extra), so it runs from its own venv, `.cache/venv-faust`, pinned in
  `scripts/bench/peers/requirements-faust.txt`.
- **Mini-batch mode** (logistic regression): River's learn_many/predict_many loop in memory
  (per batch of 500: build the frame from the event dicts column-wise, `predict_many`, then
  `learn_many`), and Driftline end to end with `model.mini_batch` = 500 on its own copy of
  the pre-loaded topics (predictions one at a time, learning every 500 joined examples;
  semantics in `docs/minibatch.md`). Both are compared with the one-at-a-time limit.
- **Latency**: a fresh deployment and a running processor; a producer offers features at a
  fixed rate (25/50/75% of the Driftline throughput measured in the same run, Elec2,
  labels 100 events later), stamping `time.time()` just before `produce()`; a
  read_committed consumer (`fetch.wait.max.ms=5`) on the predictions topic stamps
  `time.time()` on arrival. Same machine, same clock. The first second after warm-up is not
  counted. The load generator, the consumer, the processor and the broker share 2 cores.
  The generator's producer uses librdkafka's default `linger.ms` (5 ms), as a producer
  application would; with `linger.ms = 0` every event became its own produce request and
  the broker alone took ~0.7 of a core at 10k events/s (0.25 with the default). A
  discarded run first warms the broker's JIT (a fresh broker acknowledged produces with a
  p99 of 0.5 s in its first minute here).
- **Latency, two guarantees**: the default exactly-once mode (a prediction becomes visible
  when its transaction commits) and `processor.guarantee = "at_least_once"` (visible as soon
  as the broker has it; a crash may repeat outputs).
- **Snapshots**: the same latency measurement for a 10-tree forest on a 20-feature
  synthetic stream (it grows past 20 MB within ~4k events; Elec2's forest stays near 2 MB),
  at 50% of the processor's throughput on that stream (measured first, pre-loaded, over the
  warm-up plus about as many events as a latency run sends: the forest slows down as it
  grows), after a warm-up of pre-loaded events: without snapshots; with a version cut every
  N examples, written inline (`checkpoint.background = false`) and by the default forked
  writer (at this cadence a cut falls due while the previous one is still being written,
  so the writer works nearly all the time); and every S seconds with the forked writer (the
  defaults are 10,000 examples or 60 s).
- **Join buffer**: end to end with label delays that leave 1k–100k events pending, and the
  engine alone (no Kafka) for 1k–1M pending events; 1M is not run through Kafka (it would
  take 2M+ messages and several minutes for the same per-event figure).
- Every measurement runs in its own process (peak RSS = `ru_maxrss` of that process) and
  stops by itself (idle exit or a timeout). Benchmarks are not tests: nothing asserts a time.

## Performance goals, as measured by this run

{goals}

## Results

{tables}

## What the profile shows

{notes}
"""

NOTES_DEFAULT = "<!-- notes -->\n(no notes yet)\n<!-- /notes -->"


def render_doc(res: dict, path: str) -> None:
    notes = NOTES_DEFAULT
    if os.path.exists(path):
        # The notes block and every hand-written section after it (up to the end of the file).
        m = re.search(r"<!-- notes -->.*?<!-- /notes -->.*", open(path).read(), re.S)
        if m:
            notes = m.group(0).rstrip("\n")
    m = res["machine"]
    text = HEADER.format(
        command=res.get("command", "scripts/bench.sh"), mode=res.get("mode"), date=res.get("date"),
        cpus=m.get("cpus"), cpu=m.get("cpu"), ram=m.get("ram_gb"), platform=m.get("platform"),
        python=m.get("python"), river=m.get("river"), kafka=m.get("kafka"), commit=m.get("commit"),
        dirty=m.get("uncommitted_src_files"), load=m.get("load_avg_at_start"), total=res.get("total_seconds", 0),
        goals=goals(res), tables=tables(res), notes=notes,
    )
    with open(path, "w") as fh:
        fh.write(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="?", default=os.path.join(ROOT, "bench-results", "latest.json"))
    ap.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md and docs/benchmarks.png")
    ap.add_argument("--png", default=None)
    args = ap.parse_args()
    res = json.load(open(args.results))
    print(tables(res))
    print()
    print(goals(res))
    png = args.png or (os.path.join(ROOT, "docs", "benchmarks.png") if args.docs else
                       os.path.join(ROOT, "bench-results", "benchmarks.png"))
    plot(res, png)
    print(f"plot: {os.path.relpath(png, ROOT)}")
    if args.docs:
        render_doc(res, os.path.join(ROOT, "docs", "benchmarks.md"))
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
