"""The vendored uPlot is the pinned release, byte for byte, with its licence beside it."""

from __future__ import annotations

import hashlib
from importlib import resources

# uPlot 1.6.32 from the npm registry (`npm pack uplot@1.6.32`, dist/).
PINNED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


def static(name: str) -> bytes:
    return resources.files("driftline.dashboard").joinpath("static", name).read_bytes()


def test_vendored_files_match_their_pinned_digests():
    for name, digest in PINNED.items():
        assert hashlib.sha256(static(name)).hexdigest() == digest, name


def test_licence_is_shipped():
    text = static("uPlot.LICENSE").decode()
    assert "MIT License" in text and "Leon Sorokin" in text


def test_the_page_loads_nothing_from_another_origin():
    for name in ("dashboard.html", "app.js", "dashboard.css"):
        text = static(name).decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
