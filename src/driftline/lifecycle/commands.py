"""Commands to a running processor, and the label window a rollback skips.

A command is handed to the processor's loop (through :class:`CommandQueue`) and applied
between two batches, never inside a transaction; the processor then cuts a version at
once, so a replay never needs to apply it again, and only then acknowledges it.

>>> skip = SkipWindow(by="offset", start=10, end=19)
>>> skip.skips(InputRecord("labels", 0, 12, 5, None, b"")), skip.skips(InputRecord("features", 0, 12, 5, None, b""))
(True, False)
>>> queue = CommandQueue()
>>> cmd = queue.submit(Command("promote", {"challenger": "hat"}, actor="test", reason="why not"))
>>> len(queue), queue.pop() is cmd
(1, True)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.core.events import InputRecord
from driftline.exceptions import DriftlineError, LifecycleError

__all__ = ["Command", "CommandQueue", "SkipWindow", "ACTIONS"]

log = logging.getLogger("driftline.lifecycle")

ACTIONS = ("promote", "alias", "rollback", "add_challenger", "remove_challenger", "predict", "reset", "erase")


@dataclass(frozen=True)
class SkipWindow:
    """Labels to leave out of a rollback's replay: offsets or event times in [start, end]."""

    by: Literal["offset", "time"]
    start: int
    end: int

    def skips(self, record: InputRecord) -> bool:
        if record.kind != "labels":
            return False
        value = record.offset if self.by == "offset" else record.timestamp
        return self.start <= value <= self.end

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.by, "start": self.start, "end": self.end}


@dataclass
class Command:
    """One request; the loop sets ``result`` or ``error`` and then ``done``."""

    action: str
    params: dict[str, Any]
    actor: str
    reason: str = ""
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    result: Any = None
    error: Exception | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise LifecycleError(f"unknown action {self.action!r}; known: {', '.join(ACTIONS)}")

    def wait(self, timeout: float) -> Any:
        """Block until the processor applied it (and stored the version it cut)."""
        if not self.done.wait(timeout):
            raise LifecycleError(f"{self.action}: not applied within {timeout:.0f}s", status=504)
        if self.error is not None:
            raise self.error
        return self.result


class CommandQueue:
    """A thread-safe FIFO between the admin API threads and the processor loop."""

    def __init__(self) -> None:
        self._items: deque[Command] = deque()
        self._lock = threading.Lock()

    def submit(self, command: Command) -> Command:
        with self._lock:
            self._items.append(command)
        return command

    def pop(self) -> Command | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def answer_each(self, apply: Callable[[Command], Any], fatal: Callable[[BaseException | None], bool]) -> None:
        """Pop every queued command, apply it and answer it: its result, or its error as a
        :class:`LifecycleError`. An error whose cause is ``fatal`` (the processor was
        fenced) is answered, then that cause is raised (the processor stops).

        >>> queue = CommandQueue()
        >>> ok, bad = queue.submit(Command("reset", {}, "t")), queue.submit(Command("reset", {"x": 1}, "t"))
        >>> queue.answer_each(lambda c: "done" if not c.params else 1 / 0, fatal=lambda cause: False)
        >>> ok.wait(0), bad.error.status
        ('done', 500)
        """
        while (command := self.pop()) is not None:
            stop = None
            try:
                command.result = apply(command)
            except DriftlineError as exc:
                command.error = exc if isinstance(exc, LifecycleError) else LifecycleError(str(exc))
                stop = exc.__cause__ if fatal(exc.__cause__) else None
            except Exception as exc:  # noqa: BLE001 - report it to the caller, keep the stream going
                log.exception("command failed")
                command.error = LifecycleError(f"{command.action} failed: {exc!r}", status=500)
            finally:
                command.done.set()
            if stop is not None:
                raise stop

    def __len__(self) -> int:
        return len(self._items)
