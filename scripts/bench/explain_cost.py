"""Cost of a per-prediction explanation against a bare predict, in microseconds per event.

    .venv/bin/python scripts/bench/explain_cost.py [--events 5000] [--train 10000]

For each preset: train on synth:agrawal (function 2, seed 7), then time, over the next
``--events`` events (best of 5 passes each, ``time.perf_counter_ns``, interleaved so that
both see the same load):

* ``predict``: ``model.predict_proba_one`` alone, what the engine does with explanations off;
* ``served``: what the engine does with them on: ``Explainer.predict_proba_one`` (the same
  prediction; a linear pipeline keeps its transformed input) then ``Explainer.explain``
  (the record's member: top-k contributions and reason codes);
* ``extra / predict``: (served - predict) / predict, the explanation's cost in predicts;
* ``unshared``: for comparison, ``model.predict_proba_one`` then ``Explainer.explain`` from
  another explainer, which transforms the input again (the linear path before the transform
  was shared), as (unshared - predict) / predict.

and the share of the attribution mass (sum of |contribution|) that falls on ``age`` and
``elevel``, the two features function 2 labels by. Prints one row per model. Modest on CPU:
one core, about a minute.
"""

from __future__ import annotations

import argparse
import time

from river.datasets import synth

from driftline.core.explain import Explainer
from driftline.core.models import PRESETS


def _best(fns, rows, passes=5) -> list[float]:
    """Best µs per event of each of ``fns``, their passes interleaved."""
    best = [float("inf")] * len(fns)
    for _ in range(passes):
        for i, fn in enumerate(fns):
            start = time.perf_counter_ns()
            for x in rows:
                fn(x)
            best[i] = min(best[i], (time.perf_counter_ns() - start) / len(rows) / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--train", type=int, default=10000)
    args = parser.parse_args()
    rows = list(synth.Agrawal(classification_function=2, seed=7).take(args.train + args.events))
    print(f"{'model':<26} {'predict µs':>11} {'served µs':>10} {'extra/predict':>14} {'unshared':>9} {'age+elevel':>11}")
    for preset, params in (("logistic_regression", {}), ("hoeffding_tree", {}),
                           ("hoeffding_adaptive_tree", {}), ("adaptive_random_forest", {"n_models": 10})):
        model = PRESETS[preset]((), **params)
        for x, y in rows[:args.train]:
            model.learn_one(x, y)
        test = [x for x, _ in rows[args.train:]]
        explainer = Explainer(top_k=5)

        def served(x, explainer=explainer, model=model):
            explainer.predict_proba_one(model, x)
            explainer.explain(model, x, True if preset == "logistic_regression" else 1)

        fresh = Explainer(top_k=5)

        def unshared(x, fresh=fresh, model=model):
            model.predict_proba_one(x)
            fresh.explain(model, x, True if preset == "logistic_regression" else 1)

        predict, serve, apart = _best([model.predict_proba_one, served, unshared], test)
        mass = total = 0.0
        for x in test:
            c = explainer.explanation(model, x, 1).contributions
            mass += abs(c.get("age", 0.0)) + abs(c.get("elevel", 0.0))
            total += sum(abs(v) for v in c.values())
        share = mass / total if total else float("nan")
        print(f"{preset:<26} {predict:>11.1f} {serve:>10.1f} {(serve - predict) / predict:>14.2f} {(apart - predict) / predict:>9.2f} {share:>11.3f}")


if __name__ == "__main__":
    main()
