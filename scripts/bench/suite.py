"""The benchmark suite: Driftline against River's bare loop and two peers.

Run it with ``scripts/bench.sh`` (which sets up the venvs and the broker). Sections:

- ``throughput``: per model, on the same pre-loaded topics: River's bare loop (the limit),
  Driftline end to end, the confluent-kafka loop (poll and batch) and a faust agent; for
  logistic regression also River's learn_many/predict_many loop and Driftline with
  ``model.mini_batch`` = 500 (on its own copy of the topics);
- ``latency``: feature produced -> prediction visible to read_committed, at 25/50/75% of
  the Driftline throughput measured in this run;
- ``snapshots``: the same latency for the forest with and without frequent snapshots;
- ``features``: throughput and RSS against 10/100/1000 features (synthetic);
- ``join``: throughput and RSS against the label delay (pending events), and the
  engine's bytes per pending event up to 1M;
- ``profile``: cProfile of the processor on Elec2.

Every measurement runs in its own process with a timeout; results go to
``bench-results/bench-<time>.json`` and ``bench-results/latest.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from common import rows_of  # noqa: E402

PY = sys.executable
FAUST_PY = os.path.join(ROOT, ".cache", "venv-faust", "bin", "python")
TMP = os.path.join(ROOT, "bench-results", "tmp")
SNAPSHOT_DATA = "synth:20"  # grows a 10-tree forest to ~20 MB in ~4k events
PRESETS = ["logistic_regression", "hoeffding_tree", "adaptive_random_forest"]
# Mini-batch mode (model.mini_batch, docs/minibatch.md): measured for the models with learn_many.
MINIBATCH = {"logistic_regression": 500}

FULL = {
    "delay": 100,
    "n": {"logistic_regression": 45_312, "hoeffding_tree": 45_312, "adaptive_random_forest": 4_000},
    "latency_presets": ["logistic_regression", "hoeffding_tree"],
    "latency_s": 10.0,
    "snapshot": {"warm": 3_000, "max_n": 12_000, "every_examples": 1_000, "every_seconds": 5.0, "duration": 30.0,
                 "stall_n": 4_000},
    "features": {10: 20_000, 100: 8_000, 1000: 1_500},
    "join_e2e": [1_000, 10_000, 100_000],
    "join_memory": [1_000, 10_000, 100_000, 1_000_000],
    "profile_n": 45_312,
}
QUICK = {
    "delay": 100,
    "n": {"logistic_regression": 8_000, "hoeffding_tree": 8_000, "adaptive_random_forest": 800},
    "latency_presets": ["logistic_regression"],
    "latency_s": 3.0,
    "snapshot": {"warm": 600, "max_n": 1_500, "every_examples": 200, "every_seconds": 2.0, "duration": 6.0,
                 "stall_n": 1_000},
    "features": {10: 4_000, 100: 2_000, 1000: 300},
    "join_e2e": [1_000, 10_000],
    "join_memory": [1_000, 10_000, 100_000],
    "profile_n": 8_000,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_case(case: str, args: dict, timeout: float) -> dict:
    cmd = [PY, os.path.join(HERE, "cases.py"), case, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"{case}: timed out after {timeout:.0f}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"{case}: exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}


class Deployment:
    """Fresh topics (and a store directory) for one measurement."""

    def __init__(self, boot: str, preset: str, tag: str, partitions: int = 1) -> None:
        from driftline.config import load_config
        from driftline.runtime.topics import create_topics

        self.boot, self.preset = boot, preset
        self.name = f"bench-{tag}-{uuid.uuid4().hex[:6]}"
        self.store = os.path.join(TMP, self.name)
        self.config = load_config(name=self.name, kafka={"bootstrap_servers": boot}, model={"preset": preset},
                                  partitions=partitions)
        create_topics(self.config)
        self.topics = self.config.topics

    def args(self, **extra) -> dict:
        return {"bootstrap": self.boot, "name": self.name, "preset": self.preset, "store": self.store, **extra}

    def preload(self, rows, delay: int) -> None:
        from driftline.runtime.replay import replay

        replay(self.config, rows, label_delay=delay, n_rows=len(rows))

    def peer_topic(self, peer: str) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic

        topic = f"{self.topics.features.rsplit('.', 1)[0]}.{peer}.predictions"
        admin = AdminClient({"bootstrap.servers": self.boot})
        for fut in admin.create_topics([NewTopic(topic, 1, 1)]).values():
            fut.result()
        return topic


def run_peer(kind: str, dep: Deployment, n: int, timeout: float) -> dict:
    common = ["--bootstrap", dep.boot, "--features-topic", dep.topics.features, "--labels-topic",
              dep.topics.labels, "--preset", dep.preset, "--features", str(n), "--labels", str(n),
              "--max-seconds", str(timeout - 10)]
    if kind.startswith("confluent"):
        mode = kind.split("-")[1]
        cmd = [PY, os.path.join(HERE, "peers", "confluent_loop.py"), *common, "--mode", mode,
               "--predictions-topic", dep.peer_topic(f"peer-confluent-{mode}")]
        out_file = None
    else:
        if not os.path.exists(FAUST_PY):
            return {"error": "faust venv missing (.cache/venv-faust): scripts/bench.sh creates it"}
        out_file = os.path.join(TMP, f"{dep.name}-faust.json")
        datadir = os.path.join(TMP, f"{dep.name}-faust-data")
        cmd = [FAUST_PY, os.path.join(HERE, "peers", "faust_agent.py"), *common, "--out", out_file,
               "--datadir", datadir, "--predictions-topic", dep.peer_topic("peer-faust")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=TMP)
    except subprocess.TimeoutExpired:
        return {"error": f"{kind}: timed out after {timeout:.0f}s"}
    try:
        text = open(out_file).read() if out_file else proc.stdout.strip().splitlines()[-1]
        return json.loads(text)
    except (OSError, IndexError, ValueError):
        return {"error": f"{kind}: exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}


# ------------------------------------------------------------------ sections ----

def section_throughput(boot: str, plan: dict, res: dict) -> None:
    out = res.setdefault("throughput", [])
    for preset in plan["models"]:
        n, delay = plan["n"][preset], plan["delay"]
        rows = rows_of("elec", n)
        dep = Deployment(boot, preset, preset[:6])
        dep.preload(rows, delay)
        budget = 60 + n / (300 if preset == "adaptive_random_forest" else 1500)
        log(f"throughput {preset}: {n} Elec2 events pre-loaded on {dep.topics.features}")
        entry = {"model": preset, "events": n, "delay": delay, "data": "Elec2"}
        entry["limit"] = run_case("limit", {"data": "elec", "n": n, "preset": preset, "delay": delay}, budget)
        entry["driftline"] = run_case("driftline", dep.args(n=n), budget)
        # The same plumbing with what the peers also leave out switched off: no drift
        # detectors or adaptation, at-least-once (metrics, validation, event-time order, dead
        # letters and CloudEvents headers stay). Its own topics: a fresh consumer group.
        lean = Deployment(boot, preset, f"ln{preset[:4]}")
        lean.preload(rows, delay)
        entry["driftline_lean"] = run_case("driftline", lean.args(
            n=n, processor={"guarantee": "at_least_once"}, drift={"detectors": [], "policy": "none"}), budget)
        for peer in plan["peers"]:
            entry[peer] = run_peer(peer, dep, n, budget)
        if preset in MINIBATCH:
            size = MINIBATCH[preset]
            entry["limit_minibatch"] = run_case("limit_minibatch", {"data": "elec", "n": n, "preset": preset,
                                                                    "batch": size}, budget)
            mb = Deployment(boot, preset, f"mb{preset[:4]}")  # its own topics: a fresh consumer group
            mb.preload(rows, delay)
            features = {name: "num" for name in rows[0][0]}
            entry["driftline_minibatch"] = run_case(
                "driftline", mb.args(n=n, model={"mini_batch": size, "features": features}), budget)
            entry["driftline_minibatch"]["batch"] = size
        lim = entry["limit"].get("eps")
        for k in ["driftline", "driftline_lean", *plan["peers"], "limit_minibatch", "driftline_minibatch"]:
            if k not in entry:
                continue
            if lim and entry[k].get("eps"):
                entry[k]["ratio"] = entry[k]["eps"] / lim
        log("  " + ", ".join(f"{k} {v.get('eps', 0):,.0f}/s" if "eps" in v else f"{k} ERROR"
                             for k, v in entry.items() if isinstance(v, dict)))
        out.append(entry)


def latency_run(boot: str, preset: str, rate: float, duration: float, extra_cfg: dict | None = None,
                warm_rows: int = 0, tag: str = "lat", data: str = "elec") -> dict:
    extra_cfg = dict(extra_cfg or {})
    partitions = extra_cfg.pop("partitions", 1)
    dep = Deployment(boot, preset, tag, partitions)
    if warm_rows:
        dep.preload(rows_of(data, warm_rows), 100)
    switches = {k: extra_cfg.pop(k) for k in ("no_label_rule",) if k in extra_cfg}
    proc_args = {**dep.args(n=1, idle_s=60.0, max_seconds=duration + 240, **extra_cfg), **switches,
                 "stop_on_term": True}
    processor = subprocess.Popen([PY, os.path.join(HERE, "cases.py"), "driftline", json.dumps(proc_args)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        result = run_case("latency", {
            "bootstrap": boot, "data": data, "n_rows": 45_000 if data == "elec" else 20_000,
            "rate": rate, "duration": duration,
            "delay": 100, "id_prefix": "L", "features_topic": dep.topics.features,
            "labels_topic": dep.topics.labels, "predictions_topic": dep.topics.predictions,
            "partitions": partitions,
            "startup_s": 60 + warm_rows / 200,
        }, timeout=duration + 200 + warm_rows / 100)
    finally:
        processor.terminate()  # it stops cleanly and reports what it measured inside
        try:
            out, _ = processor.communicate(timeout=30)
            line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
            if line and "error" not in result:
                inside = json.loads(line[len("RESULT "):])
                result["label_wait_ms"] = inside.get("label_wait_ms")
                result["merge"] = inside.get("merge")
        except subprocess.TimeoutExpired:
            processor.kill()
            processor.wait()
    snaps = sorted(glob.glob(os.path.join(dep.store, "**", "*.snap"), recursive=True))
    sizes = [os.path.getsize(p) for p in snaps]
    result["snapshots"] = len(sizes)
    result["snapshot_max_bytes"] = max(sizes) if sizes else 0
    shutil.rmtree(dep.store, ignore_errors=True)
    return result


def section_latency(boot: str, plan: dict, res: dict) -> None:
    out = res.setdefault("latency", [])
    tp = {e["model"]: e["driftline"].get("eps") for e in res.get("throughput", [])}
    first = next((p for p in plan["latency_presets"] if tp.get(p)), None)
    if first:  # a fresh broker's JIT is cold: its first minute of acknowledgements is slow
        log(f"latency: warming the broker up ({plan['latency_s']:.0f} s at 25% of {first}, not recorded)")
        latency_run(boot, first, tp[first] * 0.25, plan["latency_s"])
    for preset in plan["latency_presets"]:
        top = tp.get(preset)
        if not top:
            log(f"latency {preset}: no Driftline throughput measured in this run; skipped")
            continue
        for guarantee in ("exactly_once", "at_least_once"):
            for frac in (0.25, 0.5, 0.75):
                rate = top * frac
                log(f"latency {preset} {guarantee} at {frac:.0%} of {top:,.0f}/s = {rate:,.0f}/s")
                r = latency_run(boot, preset, rate, plan["latency_s"], {"processor": {"guarantee": guarantee}})
                out.append({"model": preset, "guarantee": guarantee, "fraction": frac, "max_eps": top, **r})
                log(f"  p50 {r.get('p50', float('nan')):.1f} ms  p99 {r.get('p99', float('nan')):.1f} ms  {r.get('error', '')}")


def section_label_rule(boot: str, plan: dict, res: dict) -> None:
    """What the live label rule (labels wait for every features partition's watermark)
    costs predictions, and how long it keeps labels: the same latency run with the rule
    and with it switched off (the older merge), at 25/50/75% of the measured throughput,
    3 input partitions, labels 100 events late."""
    out = res.setdefault("label_rule", [])
    tp = {e["model"]: e["driftline"].get("eps") for e in res.get("throughput", [])}
    preset = "logistic_regression"
    top = tp.get(preset)
    if not top:
        log("label_rule: no Driftline throughput measured in this run; skipped")
        return
    log(f"label_rule: warming the broker up ({plan['latency_s']:.0f} s at 25% of {preset}, not recorded)")
    latency_run(boot, preset, top * 0.25, plan["latency_s"], {"partitions": 3})
    for frac in (0.25, 0.5, 0.75):
        for rule in (True, False):
            rate = top * frac
            cfg = {"partitions": 3, **({} if rule else {"no_label_rule": True})}
            log(f"label_rule {'on ' if rule else 'off'} at {frac:.0%} of {top:,.0f}/s = {rate:,.0f}/s")
            r = latency_run(boot, preset, rate, plan["latency_s"], cfg)
            out.append({"model": preset, "fraction": frac, "max_eps": top, "label_rule": rule, **r})
            wait = r.get("label_wait_ms") or {}
            log(f"  prediction p50 {r.get('p50', float('nan')):.1f} ms  p99 {r.get('p99', float('nan')):.1f} ms;"
                f"  label wait p50 {wait.get('p50', float('nan')):.2f} ms  p99 {wait.get('p99', float('nan')):.2f} ms"
                f"  {r.get('error', '')}")


def section_snapshots(boot: str, plan: dict, res: dict) -> None:
    """Latency while a large forest is snapshotted: a 20-feature stream grows the forest
    past 20 MB within a few thousand events (Elec2's stays near 2 MB). The load is 50% of
    the processor's throughput on that same stream, measured first."""
    out = res.setdefault("snapshots", [])
    preset, data = "adaptive_random_forest", SNAPSHOT_DATA
    s = plan["snapshot"]
    stall = run_case("snapshot_stall", {"preset": preset, "data": data, "n": s["stall_n"]}, 600)
    res["snapshot_stall"] = {"preset": preset, "data": data, "n": s["stall_n"], **stall}
    log(f"snapshot stall ({data}, {s['stall_n']} events): " + ", ".join(
        f"{k} blocked {v['blocked_ms']:.1f} ms of {v['save_ms']:.0f} ms, {v['mb']:.1f} MB"
        for k, v in stall.items() if isinstance(v, dict)))
    # The forest gets slower as it grows, so its max is measured over the part of the stream
    # the latency runs go through (the warm-up, then about as many events as they send).
    dep = Deployment(boot, preset, "snapmax")
    n_max = s["warm"] + s["max_n"]
    dep.preload(rows_of(data, n_max), 100)
    top = run_case("driftline", dep.args(n=n_max), 120 + n_max / 100).get("eps") or 400.0
    rate = top * 0.5
    # Drift-triggered versions are off in every case, so only the cadence and the writer differ.
    # Every N examples keeps the writer busy nearly all the time (a cut falls due while the
    # last one is still being written); every S seconds is a more usual cadence, still far
    # more often than the defaults (10,000 examples or 60 s).
    every = {"every_examples": s["every_examples"], "on_drift": False}
    timed = {"every_seconds": s["every_seconds"], "on_drift": False}
    for label, cfg in (("steady (no snapshots)", {"on_drift": False}),
                       (f"snapshot every {s['every_examples']} examples, written inline", {**every, "background": False}),
                       (f"snapshot every {s['every_examples']} examples, forked writer (default)", every),
                       (f"snapshot every {s['every_seconds']:g} s, forked writer (default)", timed)):
        log(f"snapshots {preset}: {label} at {rate:,.0f}/s after {s['warm']} warm-up events ({data})")
        r = latency_run(boot, preset, rate, s["duration"], cfg, warm_rows=s["warm"], tag="snap", data=data)
        out.append({"model": preset, "case": label, "rate": rate, "max_eps": top, "data": data, **r})
        log(f"  p50 {r.get('p50', float('nan')):.1f} ms  p99 {r.get('p99', float('nan')):.1f} ms  "
            f"snapshots {r.get('snapshots')} max {r.get('snapshot_max_bytes', 0) / 1e6:.1f} MB {r.get('error', '')}")


def section_features(boot: str, plan: dict, res: dict) -> None:
    out = res.setdefault("features", [])
    preset = "logistic_regression"
    for nf, n in plan["features"].items():
        data = f"synth:{nf}"
        dep = Deployment(boot, preset, f"f{nf}")
        dep.preload(rows_of(data, n), plan["delay"])
        log(f"features {nf}: {n} events")
        lim = run_case("limit", {"data": data, "n": n, "preset": preset, "delay": plan["delay"]}, 300)
        ours = run_case("driftline", dep.args(n=n), 300)
        out.append({"model": preset, "features": nf, "events": n, "limit": lim, "driftline": ours})
        log(f"  limit {lim.get('eps', 0):,.0f}/s  driftline {ours.get('eps', 0):,.0f}/s rss {ours.get('rss_mb', 0):.0f} MB")


def section_join(boot: str, plan: dict, res: dict) -> None:
    out = res.setdefault("join", {"e2e": [], "memory": []})
    preset = "logistic_regression"
    for delay in plan["join_e2e"]:
        n = delay + 20_000
        data = "synth:10"
        dep = Deployment(boot, preset, f"j{delay}")
        dep.preload(rows_of(data, n), delay)
        log(f"join e2e: label delay {delay} ({n} events)")
        lim = run_case("limit", {"data": data, "n": n, "preset": preset, "delay": delay}, 300)
        ours = run_case("driftline", dep.args(n=n), 400)
        out["e2e"].append({"model": preset, "delay": delay, "events": n, "limit": lim, "driftline": ours})
        log(f"  limit {lim.get('eps', 0):,.0f}/s  driftline {ours.get('eps', 0):,.0f}/s rss {ours.get('rss_mb', 0):.0f} MB")
    for pending in plan["join_memory"]:
        for nf in (10,):
            r = run_case("join_memory", {"pending": pending, "n_features": nf, "preset": preset}, 300)
            out["memory"].append({"model": preset, "features": nf, **r, "requested": pending})
            log(f"join memory: {pending} pending: {r.get('bytes_per_pending', 0):,.0f} B/event {r.get('error', '')}")


def section_profile(boot: str, plan: dict, res: dict) -> None:
    out = res.setdefault("profile", [])
    for preset in ("logistic_regression", "hoeffding_tree"):
        n = plan["profile_n"]
        dep = Deployment(boot, preset, f"p{preset[:4]}")
        dep.preload(rows_of("elec", n), plan["delay"])
        text_out = os.path.join(ROOT, "bench-results", f"profile-{preset}.txt")
        log(f"profile {preset}: {n} events under cProfile")
        r = run_case("profile", dep.args(n=n, text_out=text_out), 600)
        out.append({"model": preset, "events": n, **r, "text": os.path.relpath(text_out, ROOT)})


def section_scaling(boot: str, plan: dict, res: dict) -> None:
    """Keyed mode: throughput with 1 and 2 worker processes on pre-loaded input with the CPU
    seconds of workers and broker, fail-over after kill -9, the cost of a third worker
    joining and leaving (scripts/bench/scaling.py; its summary lines print as it goes), and
    the group protocols' rebalance times (scripts/bench/kip848.py);
    global mode: the trainer's rate and predictions per second with 1 and 2 predictors next
    to River's bare loop, and version propagation to 2 predictors (scripts/bench/global_mode.py)."""
    import scaling

    res["scaling"] = scaling.run(boot, quick=res.get("mode") == "quick")
    import kip848  # the group protocols: classic/range against KIP-848's consumer/range

    res["scaling"]["protocols"] = kip848.run(boot, repeat=1 if res.get("mode") == "quick" else 3)
    import global_mode  # global mode: release on .versions to every predictor serving it

    seconds = 10 if res.get("mode") == "quick" else 20
    res["scaling"]["global_rates"] = global_mode.run(boot, 5_000 if res.get("mode") == "quick" else 20_000)
    res["scaling"]["global_propagation"] = [global_mode.propagation(boot, preset, seconds, 200, 200)
                                            for preset in ("logistic_regression", "hoeffding_tree")]


SECTIONS = {"throughput": section_throughput, "latency": section_latency, "label_rule": section_label_rule,
            "snapshots": section_snapshots,
            "features": section_features, "join": section_join, "profile": section_profile,
            "scaling": section_scaling}


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(open("/proc/meminfo").readline().split()[1]) // 1024 // 1024
    except OSError:
        mem = 0
    import river

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "ram_gb": mem,
            "python": platform.python_version(), "river": river.__version__,
            "kafka": os.environ.get("KAFKA_VERSION", "4.1.1"),
            "commit": git("rev-parse", "--short", "HEAD"),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "uncommitted_src_files": len([ln for ln in git("status", "--porcelain", "src").splitlines() if ln])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:49092"))
    ap.add_argument("--quick", action="store_true", help="a ~3-minute smoke run with fewer events")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--models", default=",".join(PRESETS))
    ap.add_argument("--peers", default="confluent-poll,confluent-batch,faust")
    ap.add_argument("--command", default="scripts/bench.sh")
    args = ap.parse_args()
    plan = dict(QUICK if args.quick else FULL)
    plan["models"] = [m for m in args.models.split(",") if m]
    plan["peers"] = [p for p in args.peers.split(",") if p]
    os.makedirs(TMP, exist_ok=True)
    started = time.time()
    res: dict = {"command": args.command, "mode": "quick" if args.quick else "full",
                 "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
                 "plan": {k: (v if not isinstance(v, dict) else {str(a): b for a, b in v.items()})
                          for k, v in plan.items()}}
    for name in args.sections.split(","):
        t0 = time.time()
        try:
            SECTIONS[name](args.bootstrap, plan, res)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            res.setdefault("errors", {})[name] = repr(exc)
            log(f"section {name} failed: {exc!r}")
        res.setdefault("section_seconds", {})[name] = round(time.time() - t0, 1)
    res["total_seconds"] = round(time.time() - started, 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (os.path.join(ROOT, "bench-results", f"bench-{stamp}.json"),
                 os.path.join(ROOT, "bench-results", "latest.json")):
        with open(path, "w") as fh:
            json.dump(res, fh, indent=2, default=float)
    shutil.rmtree(TMP, ignore_errors=True)
    log(f"done in {res['total_seconds']:.0f}s: bench-results/bench-{stamp}.json")


if __name__ == "__main__":
    main()
