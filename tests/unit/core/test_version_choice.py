"""The version rule of global mode, against a brute-force reading of its definition."""

from __future__ import annotations

import random

import pytest

from driftline.core.version_choice import VersionBook


def _brute(versions: list[tuple[int, int]], watermark: float, t: int, delta: int) -> int | None:
    """Straight from the definition: wait unless something above t - Δ is known, then the
    highest-numbered version (0 included) whose watermark is at most t - Δ."""
    if watermark <= t - delta:
        return None
    return max([0] + [n for n, w in versions if w <= t - delta])


def test_waits_until_a_watermark_passes_the_bound():
    book = VersionBook()
    assert book.choose(10, delta_ms=0) is None  # nothing known: wait
    book.heartbeat(10)
    assert book.choose(10, delta_ms=0) is None  # W must be strictly above t - Δ
    book.heartbeat(11)
    assert book.choose(10, delta_ms=0) == 0


def test_ties_of_watermarks_serve_the_newest_version():
    book = VersionBook()
    book.add(1, 100)
    book.add(2, 100)
    book.heartbeat(300)
    assert book.choose(150, delta_ms=50) == 2
    assert book.choose(149, delta_ms=50) == 0


def test_out_of_order_versions_are_refused():
    book = VersionBook()
    book.add(1, 100)
    with pytest.raises(ValueError):
        book.add(1, 200)
    with pytest.raises(ValueError):
        book.add(2, 99)
    assert book.newest == 1 and 1 in book and 2 not in book


def test_an_old_heartbeat_does_not_move_the_watermark_back():
    book = VersionBook()
    book.heartbeat(500)
    book.heartbeat(100)
    assert book.watermark == 500
    assert book.choose(450, delta_ms=10) == 0


def test_matches_the_definition_on_random_histories():
    rng = random.Random(13)
    for _ in range(200):
        book, versions, mark, n, watermark = VersionBook(), [], 0, 0, float("-inf")
        for _ in range(rng.randrange(1, 30)):
            mark += rng.randrange(0, 50)
            if rng.random() < 0.6:
                n += rng.randrange(1, 3)
                book.add(n, mark)
                versions.append((n, mark))
            else:
                book.heartbeat(mark)
            watermark = max(watermark, mark)
            for _ in range(5):
                t, delta = rng.randrange(-20, mark + 80), rng.randrange(0, 40)
                assert book.choose(t, delta) == _brute(versions, watermark, t, delta)
