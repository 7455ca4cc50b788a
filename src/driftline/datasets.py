"""Streams to replay: CSV files, River's bundled data sets, and synthetic streams with drift.

A spec string names the stream:

- ``path/to/file.csv`` (the target is ``target`` or the last column);
- ``river:Phishing`` (any River data set bundled with the package, no download);
- ``synth:sea``, ``synth:agrawal``, ``synth:sine``, ``synth:stagger``, ``synth:mixed``: River's
  generators with an abrupt concept switch every ``drift_every`` events and ``noise`` label
  noise. River 0.26's ``ConceptDriftStream`` overflows on long streams, so the switch is done
  here: each concept is its own seeded generator.

>>> rows = list(stream("synth:sea", limit=3, seed=1))
>>> len(rows), sorted(rows[0][0])
(3, [0, 1, 2])
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from river import datasets
from river.datasets import synth

from driftline.exceptions import ConfigError

__all__ = ["stream", "drifting", "SYNTH"]

Row = tuple[dict[str, Any], Any]

# name -> (generator factory taking (concept index, seed), number of distinct concepts)
SYNTH = {
    "sea": (lambda k, seed: synth.SEA(variant=k % 4, seed=seed), 4),
    "agrawal": (lambda k, seed: synth.Agrawal(classification_function=k % 10, seed=seed), 10),
    "sine": (lambda k, seed: synth.Sine(classification_function=k % 4, seed=seed), 4),
    "stagger": (lambda k, seed: synth.STAGGER(classification_function=k % 3, seed=seed), 3),
    "mixed": (lambda k, seed: synth.Mixed(classification_function=k % 2, seed=seed), 2),
}


def _flip(y: Any) -> Any:
    if isinstance(y, bool):
        return not y
    if y in (0, 1):
        return 1 - y
    return y


def drifting(name: str, drift_every: int = 20_000, noise: float = 0.1, seed: int = 42) -> Iterator[Row]:
    """An endless synthetic stream whose concept switches abruptly every ``drift_every`` events.

    >>> first = [y for _, y in itertools.islice(drifting("stagger", drift_every=5, noise=0.0, seed=3), 10)]
    >>> len(first)
    10
    """
    try:
        factory, n_concepts = SYNTH[name]
    except KeyError:
        raise ConfigError(f"unknown synthetic stream {name!r}; known: {', '.join(SYNTH)}") from None
    rng = random.Random(seed)
    for k in itertools.count():
        generator = factory(k % n_concepts, seed + k)
        for x, y in generator.take(drift_every):
            yield x, (_flip(y) if rng.random() < noise else y)


def _number(value: str) -> Any:
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return value


def _csv(path: Path, target: str | None) -> Iterator[Row]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ConfigError(f"{path} has no header row")
        target = target or reader.fieldnames[-1]
        if target not in reader.fieldnames:
            raise ConfigError(f"{path} has no column {target!r}")
        for row in reader:
            y = _number(row.pop(target))
            yield {k: _number(v) for k, v in row.items()}, y


def stream(spec: str, limit: int | None = None, target: str | None = None, seed: int = 42,
           drift_every: int = 20_000, noise: float = 0.1) -> Iterator[Row]:
    """Rows ``(features, label)`` of the stream named by ``spec``."""
    if spec.startswith("synth:"):
        rows: Iterator[Row] = drifting(spec.removeprefix("synth:"), drift_every, noise, seed)
    elif spec.startswith("river:"):
        name = spec.removeprefix("river:")
        cls = getattr(datasets, name, None)
        if cls is None:
            raise ConfigError(f"unknown River data set {name!r}")
        rows = iter(cls())
    else:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"no such data file: {spec}")
        rows = _csv(path, target)
    return itertools.islice(rows, limit) if limit is not None else rows
