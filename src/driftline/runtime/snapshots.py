"""Cutting versions off the hot path: the snapshot is written by a forked child.

Pickling a model is CPU work under the GIL: a 20 MB forest takes over half a second, and
the stream would stall for that long. Like Redis' ``BGSAVE``, :class:`BackgroundSaver`
forks instead: the child owns a copy-on-write image of the engine *as it was at the cut*,
pickles, signs and writes it (atomically, see :mod:`driftline.versions.store`) and exits,
while the parent goes on predicting and learning. The parent learns how it went from the
child's exit status (:meth:`BackgroundSaver.poll`) and only then registers and announces
the version, so nothing refers to a version before its file is durable.

The child never touches Kafka, locks or logging (other threads' locks may be held at fork
time): it pickles, writes, and leaves with ``os._exit``. It is killed if the parent dies
(``PR_SET_PDEATHSIG``), so a crashed processor leaves no orphan writing behind a successor
(at worst a ``.tmp-<pid>`` file, which listings ignore). Where ``fork`` is missing the
saver writes inline.

>>> import tempfile
>>> from driftline.versions.store import VersionStore
>>> store = VersionStore(tempfile.mkdtemp(), "demo", key=b"k")
>>> saver = BackgroundSaver(store)
>>> saver.start(1, {"trigger": "manual"}, {"w": [1, 2]})
>>> done = saver.wait()
>>> done.version, done.error, store.load(1)[1]
(1, None, {'w': [1, 2]})
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.versions.store import VersionStore

__all__ = ["BackgroundSaver", "SaveResult"]

_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


@dataclass(frozen=True)
class SaveResult:
    """How one background save ended: ``error`` is ``None`` on success."""

    version: int
    meta: dict[str, Any]
    error: str | None
    seconds: float


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this child when its parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, _SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _yield_cpu() -> None:
    """Run the writer only on CPU time nobody else wants (Linux ``SCHED_IDLE``).

    Pickling a large model takes a core for seconds; at normal priority the writer competes
    with the processor (and, on a small machine, with the broker) and the stream slows down
    for as long as it runs. The version is not urgent: it only has to land eventually.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


class BackgroundSaver:
    """Writes at most one version at a time in a forked child."""

    def __init__(self, store: VersionStore, enabled: bool = True) -> None:
        self.store = store
        self.forking = enabled and hasattr(os, "fork") and sys.platform.startswith("linux")
        self._pid: int | None = None
        self._err_fd: int | None = None
        self._job: tuple[int, dict[str, Any], float] | None = None
        self._inline: SaveResult | None = None

    @property
    def busy(self) -> bool:
        """A save was started and its result not collected yet."""
        return self._job is not None

    def start(self, version: int, meta: dict[str, Any], state: Any,
              prepare: Callable[[], None] | None = None) -> None:
        """Write ``version`` from a child; ``prepare`` runs in the child just before pickling."""
        if self.busy:
            raise RuntimeError("a background save is still running; collect it first")
        started = time.perf_counter()
        self._job = (version, meta, started)
        if not self.forking:
            self._inline = self._save_inline(version, meta, state, prepare, started)
            return
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        # While the child lives, every page the parent writes is copied. A full collection
        # writes to the header of every tracked object (a 60 MB forest: the whole heap
        # copied, and a ~80 ms pause instead of ~50): objects that exist at the fork sit it
        # out until the child is collected (gc.freeze, as the gc docs advise around fork).
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            gc.unfreeze()
            os.close(read_fd)
            os.close(write_fd)
            self._job = None
            raise
        if pid == 0:  # the child: write and leave, whatever happens
            code = 1
            try:
                os.close(read_fd)
                _die_with_parent(parent)
                _yield_cpu()
                gc.disable()  # collecting would only copy pages the parent still shares
                if prepare is not None:
                    prepare()
                self.store.save(version, meta, state)
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent through the pipe
                try:
                    os.write(write_fd, repr(exc)[:2000].encode(errors="replace"))
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid, self._err_fd = pid, read_fd

    def _save_inline(self, version, meta, state, prepare, started) -> SaveResult:
        error = None
        try:
            if prepare is not None:
                prepare()
            self.store.save(version, meta, state)
        except Exception as exc:  # noqa: BLE001 - reported like a child's failure
            error = repr(exc)[:2000]
        return SaveResult(version, meta, error, time.perf_counter() - started)

    def poll(self) -> SaveResult | None:
        """The result of the running save if it has finished (never blocks)."""
        return self._collect(block=False)

    def wait(self) -> SaveResult | None:
        """Block until the running save (if any) has finished; its result."""
        return self._collect(block=True)

    def _collect(self, block: bool) -> SaveResult | None:
        if self._job is None:
            return None
        version, meta, started = self._job
        if self._pid is None:  # inline save: already done
            result, self._inline, self._job = self._inline, None, None
            return result
        pid, status = os.waitpid(self._pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        gc.unfreeze()  # back to the oldest generation: collectable again
        message = b""
        try:
            while chunk := os.read(self._err_fd, 4096):
                message += chunk
        finally:
            os.close(self._err_fd)
        self._pid = self._err_fd = self._job = None
        error = None
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            error = message.decode(errors="replace") or f"snapshot writer exited with status {status}"
        return SaveResult(version, meta, error, time.perf_counter() - started)
