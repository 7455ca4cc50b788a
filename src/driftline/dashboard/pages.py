"""The admin server's non-JSON pages: the live page, its event stream, and version reports.

- ``GET /dashboard``: the page (HTML), with ``/dashboard/static/<file>`` (its script, style
  and the vendored uPlot); a Content-Security-Policy lets it reach its own origin only;
- ``GET /events``: Server-Sent Events from the :class:`LiveFeed`, replaying what the ring
  holds after ``Last-Event-ID``; ``503`` with ``Retry-After`` past the cap on clients;
- ``GET /versions/{n}/report`` (also ``/models/{model}/versions/{n}/report``): the version's
  report (:mod:`driftline.reports`), rebuilt from the version store.

All are read-only and open, like the admin API's other read-only endpoints.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from driftline.exceptions import DriftlineError

__all__ = ["serve_page", "STATIC"]

STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "uPlot.LICENSE": "text/plain; charset=utf-8",
}
_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
_REPORT = re.compile(r"(?:/models/([^/]+))?/versions/(\d+)/report")
KEEPALIVE_S = 15.0


def _static(name: str) -> bytes:
    return resources.files("driftline.dashboard").joinpath("static", name).read_bytes()


def _send(handler: Any, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    for key, value in (extra or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def serve_page(handler: Any, server: Any, path: str) -> bool:
    """Serve ``path`` if it is one of these pages (``True``), else leave it to the JSON API."""
    if path in ("/dashboard", "/dashboard/"):
        _send(handler, 200, _static("dashboard.html"), "text/html; charset=utf-8", {"Content-Security-Policy": _CSP})
        return True
    if path.startswith("/dashboard/static/"):
        name = path.rsplit("/", 1)[1]
        if name not in STATIC:
            _send(handler, 404, b"not found", "text/plain")
        else:
            _send(handler, 200, _static(name), STATIC[name])
        return True
    if path == "/favicon.ico":  # browsers ask for it: nothing, rather than a 404 in the console
        handler.send_response(204)
        handler.end_headers()
        return True
    if path == "/events":
        _stream(handler, server.feed)
        return True
    m = _REPORT.fullmatch(path)
    if m:
        if m.group(1) not in (None, server.model):
            _send(handler, 404, b"no such model", "text/plain")
            return True
        from driftline.reports import version_report

        try:
            html = version_report(server.store, int(m.group(2))).encode()
        except DriftlineError as exc:
            _send(handler, 404, str(exc).encode(), "text/plain; charset=utf-8")
            return True
        _send(handler, 200, html, "text/html; charset=utf-8", {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
        return True
    return False


def _stream(handler: Any, feed: Any) -> None:
    if feed is None:
        _send(handler, 404, b"no live feed on this server", "text/plain")
        return
    if not feed.join():
        _send(handler, 503, b"too many live clients", "text/plain", {"Retry-After": "10"})
        return
    try:
        raw = handler.headers.get("Last-Event-ID")
        last = int(raw) if raw and raw.strip().isdigit() else None
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("X-Accel-Buffering", "no")
        handler.end_headers()
        handler.wfile.write(b"retry: 2000\n\n")
        pending = feed.since(last)
        while not feed.closed:
            for event in pending:
                handler.wfile.write(event.frame())
                last = event.id
            if not pending:
                handler.wfile.write(b": keepalive\n\n")
            handler.wfile.flush()
            pending = feed.wait(last, KEEPALIVE_S)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the client went away
    finally:
        feed.leave()
