"""The admin HTTP API (stdlib ``http.server`` in a thread of the processor's process).

Read-only endpoints (versions, diff, history, lifecycle events, ``/openapi.json``, and
``POST /predict``, which changes nothing) are open. State-changing ones (promote, alias
moves, rollback, challengers, reset, erase) need ``Authorization: Bearer <token>`` with the token
from the environment (``[lifecycle] token_env``, ``DRIFTLINE_ADMIN_TOKEN``), compared in
constant time; without a configured token they are refused (403). The token is never
logged. Commands go to the processor loop through a queue and are answered once applied
and the version they cut is stored.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson

from driftline.dashboard.pages import serve_page
from driftline.config import AlertRule
from driftline.exceptions import DriftlineError, LifecycleError, RegistryError
from driftline.lifecycle.alerts import ACTOR, commands_for
from driftline.lifecycle.commands import Command
from driftline.lifecycle.registry import Registry
from driftline.lifecycle.views import diff_versions

__all__ = ["AdminServer", "openapi"]

log = logging.getLogger("driftline.admin")

_WRITE = {  # (method, path suffix) -> command action
    ("POST", "promote"): "promote",
    ("POST", "aliases"): "alias",
    ("POST", "rollback"): "rollback",
    ("POST", "challengers"): "add_challenger",
    ("DELETE", "challengers"): "remove_challenger",
    ("POST", "reset"): "reset",
    ("POST", "erase"): "erase",
}


def openapi(model: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API."""
    secured = [{"bearer": []}]
    body = lambda props, required=(): {  # noqa: E731
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "properties": props, "required": list(required)}}},
    }
    reason = {"reason": {"type": "string"}}
    ok = {"200": {"description": "applied; the version cut is in the answer"}, "401": {"description": "no or bad token"},
          "403": {"description": "writes disabled (no token configured)"}, "404": {"description": "no such version"}}
    read = {"200": {"description": "OK"}}
    p = f"/models/{model}"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Driftline admin API", "version": "1", "description": __doc__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            f"{p}/versions": {"get": {"summary": "List versions (registry)", "responses": read}},
            f"{p}/versions/{{version}}": {"get": {"summary": "One version, by number or alias", "responses": read}},
            f"{p}/diff": {"get": {"summary": "Compare two versions (?a=&b=)", "responses": read}},
            f"{p}/history": {"get": {"summary": "Serving intervals; with ?key=&at= which version and variant "
                                                "served that key at that event time", "responses": read}},
            f"{p}/events": {"get": {"summary": "Lifecycle events (audit trail)", "responses": read}},
            "/dashboard": {"get": {"summary": "The live page (HTML, updated from /events)", "responses": read}},
            "/events": {"get": {"summary": "Server-Sent Events of the live page (Last-Event-ID replays)",
                                "responses": read}},
            "/versions/{version}/report": {"get": {"summary": "A version's drift report (HTML)", "responses": read}},
            "/predict": {"post": {"summary": "Predict with the current champion (with [governance.explain]: and "
                                             "explain the prediction)", "responses": read,
                                  "requestBody": body({"features": {"type": "object"},
                                                       "key": {"type": "string",
                                                               "description": "keyed mode: whose model"}},
                                                      ["features"])}},
            f"{p}/promote": {"post": {"summary": "Promote a challenger, or a stored version (blue/green)",
                                      "security": secured, "responses": ok, "requestBody": body(
                                          {"challenger": {"type": "string"}, "version": {"type": ["integer", "string"]},
                                           **reason})}},
            f"{p}/aliases": {"post": {"summary": "Point an alias at a version (champion: swap the serving model)",
                                      "security": secured, "responses": ok, "requestBody": body(
                                          {"alias": {"type": "string"}, "version": {"type": ["integer", "string"]},
                                           **reason}, ["alias", "version"])}},
            f"{p}/rollback": {"post": {"summary": "Restore a version; optionally re-learn from its offsets "
                                                  "skipping a window of labels", "security": secured, "responses": ok,
                                       "requestBody": body({"to": {"type": ["integer", "string"]},
                                                            "replay": {"type": "boolean"},
                                                            "skip": {"type": "object", "properties": {
                                                                "by": {"enum": ["offset", "time"]},
                                                                "start": {"type": "integer"},
                                                                "end": {"type": "integer"}}},
                                                            "key": {"type": "string", "description": "keyed mode: "
                                                                    "the key whose model is restored from "
                                                                    "version `to` of its task"},
                                                            **reason}, ["to"])}},
            f"{p}/challengers": {"post": {"summary": "Add a challenger (start: cold, warm or version:<v>)",
                                          "security": secured, "responses": ok, "requestBody": body(
                                              {"name": {"type": "string"}, "start": {"type": "string"},
                                               "share": {"type": "number"}, "model": {"type": "object"}, **reason},
                                              ["name"])}},
            f"{p}/challengers/{{name}}": {"delete": {"summary": "Remove a challenger", "security": secured,
                                                     "responses": ok}},
            f"{p}/reset": {"post": {"summary": "Replace the champion with a fresh model (keyed mode: the "
                                               "model of one key)", "security": secured, "responses": ok,
                                    "requestBody": body({"key": {"type": "string"}, **reason})}},
            f"{p}/erase": {"post": {"summary": "Erase one data subject: exact unlearning by replay without its "
                                              "events, tombstones, a receipt on .lifecycle (give key or id)",
                                   "security": secured, "responses": {**ok, "409": {
                                       "description": "no version before the subject's first event"}},
                                   "requestBody": body({"key": {"type": "string"}, "id": {"type": "string"},
                                                        **reason})}},
            "/alerts/alertmanager": {"post": {"summary": "Alertmanager webhook (payload version 4): each firing "
                                                         "alert with a [[lifecycle.alert_rules]] rule runs its action",
                                              "security": secured, "responses": ok, "requestBody": body(
                                                  {"version": {"const": "4"}, "alerts": {"type": "array"}},
                                                  ["version", "alerts"])}},
        },
    }


class AdminServer:
    """Serve the admin API for one deployment; ``submit`` hands a command to the loop."""

    def __init__(self, model: str, registry: Registry, submit: Callable[[Command], Any], store: Any,
                 token: str | None, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 300.0,
                 feed: Any = None, alert_rules: Sequence[AlertRule] = ()) -> None:
        self.model, self.registry, self.submit, self.store = model, registry, submit, store
        self.feed = feed  # the live page's events (dashboard/feed.py); None serves no /events
        self.alert_rules = tuple(alert_rules)  # POST /alerts/alertmanager (lifecycle/alerts.py)
        self._alerts_seen: set[tuple[str, str]] = set()  # (fingerprint, startsAt) acted on
        self._token = token.encode() if token else None
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        """Start serving in a daemon thread; return the port."""
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="driftline-admin", daemon=True).start()
        self.port = self._server.server_address[1]
        if self._token is None:
            log.warning("admin API: no token configured, state-changing endpoints are disabled")
        return self.port

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.close()  # ends the /events streams
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def authorized(self, header: str | None) -> None:
        if self._token is None:
            raise LifecycleError("state-changing endpoints are disabled: no admin token configured", status=403)
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            raise LifecycleError("missing or invalid bearer token", status=401)

    # -- routes --------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any],
               auth: str | None, client: str) -> tuple[int, Any]:
        if method == "GET" and path == "/openapi.json":
            return 200, openapi(self.model)
        if method == "GET" and path == "/health":
            return 200, {"status": "ok"}
        if method == "POST" and path == "/predict":
            params = {"features": body.get("features"), **({"key": body["key"]} if "key" in body else {})}
            return 200, self._command("predict", params, "api:predict", "")
        if method == "POST" and path == "/alerts/alertmanager":
            self.authorized(auth)
            done = [self._command(action, params, ACTOR, reason)
                    for action, params, reason in commands_for(body, self.alert_rules, self.model, self._alerts_seen)]
            return 200, {"commands": done}
        m = re.fullmatch(r"/models/([^/]+)/([a-z]+)(?:/([^/]+))?", path)
        if not m or m.group(1) != self.model:
            raise LifecycleError(f"not found: {path}", status=404)
        resource, arg = m.group(2), m.group(3)
        if method == "GET":
            self.registry.sync(self.store)
            if resource == "versions":
                return 200, self.registry.get(self.model, arg) if arg else self.registry.versions(self.model)
            if resource == "diff":
                return 200, diff_versions(self.registry.get(self.model, query["a"]),
                                          self.registry.get(self.model, query["b"]))
            if resource == "history":
                if "key" in query:
                    return 200, self.registry.served_by(self.model, query["key"], int(query["at"]))
                return 200, {"serving": self.registry.serving(self.model), "events": self.registry.events(self.model)}
            if resource == "events":
                return 200, self.registry.events(self.model)
            raise LifecycleError(f"not found: {path}", status=404)
        action = _WRITE.get((method, resource))
        if action is None:
            raise LifecycleError(f"{method} {path} is not an endpoint", status=405)
        self.authorized(auth)
        actor = f"api:{body.pop('actor', 'admin')}@{client}"
        reason = str(body.pop("reason", ""))
        if action == "remove_challenger":
            body = {"name": arg}
        return 200, self._command(action, body, actor, reason)

    def _command(self, action: str, params: dict[str, Any], actor: str, reason: str) -> Any:
        command = self.submit(Command(action, params, actor=actor, reason=reason))
        return command.wait(self.timeout_s)


def _handler(server: AdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = orjson.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise LifecycleError("the request body must be a JSON object")
                status, answer = server.handle(method, url.path, query, body, self.headers.get("Authorization"),
                                               self.client_address[0])
            except orjson.JSONDecodeError as exc:
                status, answer = 400, {"error": f"bad JSON: {exc}"}
            except LifecycleError as exc:
                status, answer = exc.status, {"error": str(exc)}
            except RegistryError as exc:
                status, answer = 404, {"error": str(exc)}
            except (DriftlineError, KeyError, ValueError, TypeError) as exc:
                status, answer = 400, {"error": f"{type(exc).__name__}: {exc}"}
            data = orjson.dumps(answer, default=str, option=orjson.OPT_NON_STR_KEYS)
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="driftline"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if not serve_page(self, server, urlparse(self.path).path):  # /dashboard, /events, reports
                self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def log_message(self, fmt: str, *args: Any) -> None:  # the request line only: never headers
            log.info("admin request", extra={"fields": {"request": fmt % args}})

    return Handler
