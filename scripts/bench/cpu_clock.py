"""CPU seconds of processes and of the whole box over a wall-clock window (Linux /proc).

A thread samples ``utime + stime`` of every watched pid (``/proc/<pid>/stat``) and the box's
busy time (``/proc/stat``: all ticks but idle and iowait) every ``every_s``; ``cpu(pid, t0,
t1)`` interpolates linearly between the samples around ``t0`` and ``t1`` (``time.time()``
seconds), so a window can be chosen after the run, e.g. from a worker's first record to its
last commit. A process that has exited keeps its last sample.
"""

from __future__ import annotations

import bisect
import os
import threading
import time

__all__ = ["CpuClock", "broker_pid", "BOX"]

TICK = os.sysconf("SC_CLK_TCK")
BOX = -1  # the pseudo-pid of the whole machine (busy CPU seconds, all cores)


def _proc_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[11]) + int(rest[12])  # utime, stime: fields 14 and 15 of proc(5)


def _sched(pid: int) -> tuple[int, int] | None:
    """The main thread's time on a CPU and waiting on a run queue, ns (/proc/<pid>/schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on_cpu, queued, _ = f.read().split()
    except (OSError, ValueError):
        return None
    return int(on_cpu), int(queued)


def _box_ticks() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]  # user nice system idle iowait irq softirq steal


class CpuClock:
    """Samples CPU ticks of ``pids`` (and the box) in a daemon thread until ``close()``."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self._samples: dict[int, tuple[list[float], list[int]]] = {BOX: ([], [])}
        self._threads: dict[int, tuple[list[float], list[int]]] = {}  # -pid - 2: run-queue ns
        self._threads_q: dict[int, tuple[list[float], list[int]]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int | None) -> None:
        if pid is not None:
            with self._lock:
                self._samples.setdefault(pid, ([], []))
            self._sample()

    def _sample(self) -> None:
        now = time.time()
        with self._lock:
            for pid, (ts, ticks) in self._samples.items():
                v = _box_ticks() if pid == BOX else _proc_ticks(pid)
                if v is not None:
                    ts.append(now)
                    ticks.append(v)
                if pid != BOX and (st := _sched(pid)) is not None:
                    for series, value in ((self._threads, st[0]), (self._threads_q, st[1])):
                        t_, v_ = series.setdefault(pid, ([], []))
                        t_.append(now)
                        v_.append(value)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def close(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(5)

    @staticmethod
    def _at(series: tuple[list[float], list[int]], t: float, unit: float) -> float:
        ts, ticks = series
        if not ts:
            return float("nan")
        i = bisect.bisect_left(ts, t)
        if i == 0:
            return ticks[0] / unit
        if i >= len(ts):
            return ticks[-1] / unit
        t0, t1, v0, v1 = ts[i - 1], ts[i], ticks[i - 1], ticks[i]
        return (v0 + (v1 - v0) * (t - t0) / (t1 - t0)) / unit if t1 > t0 else v1 / unit

    def cpu(self, pid: int | None, t0: float, t1: float) -> float:
        """CPU seconds ``pid`` used between wall times ``t0`` and ``t1`` (nan if not watched)."""
        if pid is None or pid not in self._samples:
            return float("nan")
        with self._lock:
            series = self._samples[pid]
            return self._at(series, t1, TICK) - self._at(series, t0, TICK)

    def main_thread(self, pid: int, t0: float, t1: float) -> dict[str, float]:
        """How ``pid``'s main thread spent the window, in seconds: on a CPU, runnable but
        waiting for one (the machine is busy), and blocked (sleeping in poll, waiting for a
        commit or a fetch: the rest of the wall time)."""
        with self._lock:
            if pid not in self._threads:
                return {}
            run = self._at(self._threads[pid], t1, 1e9) - self._at(self._threads[pid], t0, 1e9)
            queue = self._at(self._threads_q[pid], t1, 1e9) - self._at(self._threads_q[pid], t0, 1e9)
        return {"on_cpu_s": round(run, 2), "runqueue_s": round(queue, 2),
                "blocked_s": round(max(0.0, (t1 - t0) - run - queue), 2)}


def _listen_inodes(port: int) -> set[str]:
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                out.add(f[9])
    return out


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the local Kafka broker listening on ``bootstrap``'s port (None if not found:
    a remote broker, or not ours to read). With one ``kafka.Kafka`` process, that one."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    inodes = _listen_inodes(port)
    brokers = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if b"kafka.Kafka" not in open(f"/proc/{d}/cmdline", "rb").read():
                continue
        except OSError:
            continue
        brokers.append(int(d))
        try:
            if any(os.readlink(f"/proc/{d}/fd/{fd}")[8:-1] in inodes for fd in os.listdir(f"/proc/{d}/fd")):
                return int(d)
        except OSError:
            pass
    return brokers[0] if len(brokers) == 1 else None
