"""Where versions live: a directory (or any fsspec URL) of signed snapshot files.

Each version is one file ``<root>/<model>/v<NNNNNNNN>.snap``. On a local directory it is
written to a temporary name, fsynced and renamed into place, so a crash mid-write never
leaves a partial version behind. On an object store (``s3://bucket/prefix`` through s3fs,
or any fsspec URL) a version is one exclusive PUT (``If-None-Match: *``): an object appears
whole or not at all, and of two workers cutting the same number only one wins. Several
machines can share one store: listings are read fresh each time (no cached directory), and
the filesystem object is made again in a forked snapshot writer (fsspec's async clients
are not fork-safe). Credentials come from the client's own environment (``AWS_*`` for s3fs)
and never from the URL; every version is signed, and checked before it is unpickled.

>>> import tempfile
>>> store = VersionStore(tempfile.mkdtemp(), "demo", key=b"secret")
>>> store.save(store.next_version(), {"trigger": "manual"}, {"w": 1})["version"]
1
>>> store.latest(), store.load(1)[1]
(1, {'w': 1})
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from driftline.exceptions import SnapshotError, SnapshotNotFoundError
from driftline.versions.signing import HEADER_PEEK, read_meta, seal, unseal

__all__ = ["VersionStore"]

_NAME = re.compile(r"v(\d{8})\.snap$")


class VersionStore:
    """Signed model versions of one deployment."""

    def __init__(self, url: str, model: str, key: bytes) -> None:
        self._url = url
        fs, root = fsspec.core.url_to_fs(url)
        self._handle: tuple[int, AbstractFileSystem] = (os.getpid(), fs)
        self._dir = f"{root.rstrip('/')}/{model}"
        self._key = key
        self.model = model

    @property
    def _fs(self) -> AbstractFileSystem:
        """The filesystem of this process: a forked child makes its own."""
        pid, fs = self._handle
        if pid != os.getpid():
            fs = fsspec.core.url_to_fs(self._url)[0]
            self._handle = (os.getpid(), fs)
        return fs

    @property
    def signing_key(self) -> bytes:
        """The snapshot key; it also signs the audit log (core/audit.py)."""
        return self._key

    def _path(self, version: int) -> str:
        return f"{self._dir}/v{version:08d}.snap"

    def versions(self) -> list[int]:
        """Version numbers present, ascending."""
        self._fs.invalidate_cache(self._dir)  # another machine may have written since
        try:
            names = self._fs.ls(self._dir, detail=False)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SnapshotError(f"cannot list the versions in {self._fs.unstrip_protocol(self._dir)}: {exc}") from exc
        found = (_NAME.search(p) for p in names)
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> int | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def next_version(self) -> int:
        return (self.latest() or 0) + 1

    def save(self, version: int, meta: dict[str, Any], state: Any) -> dict[str, Any]:
        """Write ``version`` (never overwriting one); return its metadata as stored."""
        if self._exists(self._path(version)):
            raise SnapshotError(f"{self.model}: version {version} already exists")
        meta = {**meta, "name": self.model, "version": version}
        blob = seal(meta, state, self._key)
        self.put(version, blob)
        return read_meta(blob)

    def put(self, version: int, blob: bytes) -> None:
        """Write an already sealed ``version`` (never overwriting one)."""
        path = self._path(version)
        try:
            self._fs.makedirs(self._dir, exist_ok=True)
            if isinstance(self._fs, LocalFileSystem):
                _write_local_atomic(path, blob)
            else:
                self._fs.pipe_file(path, blob, mode="create")
        except OSError as exc:
            if not isinstance(self._fs, LocalFileSystem) and self._exists(path):
                raise SnapshotError(f"{self.model}: version {version} already exists") from exc
            raise SnapshotError(f"cannot write version {version} to {self.uri(version)}: {exc}") from exc

    def read(self, version: int) -> bytes:
        """A version's sealed bytes, unverified (``signing.unseal`` verifies them)."""
        return self._read(version)

    def _exists(self, path: str) -> bool:
        self._fs.invalidate_cache(self._dir)
        try:
            return self._fs.exists(path)
        except OSError as exc:
            raise SnapshotError(f"cannot reach the version store at {self._fs.unstrip_protocol(path)}: {exc}") from exc

    def _read(self, version: int, size: int | None = None) -> bytes:
        path = self._path(version)
        try:
            with self._fs.open(path, "rb") as fh:
                return fh.read() if size is None else fh.read(size)
        except FileNotFoundError:
            raise SnapshotNotFoundError(f"{self.model}: no version {version} at {path}") from None
        except OSError as exc:  # permissions, an unreachable endpoint
            raise SnapshotError(f"cannot read version {version} from {self.uri(version)}: {exc}") from exc

    def meta(self, version: int) -> dict[str, Any]:
        """Unverified metadata of one version (cheap: reads only the header)."""
        blob = self._read(version, HEADER_PEEK)
        try:
            return read_meta(blob)
        except SnapshotError:
            return read_meta(self._read(version))

    def uri(self, version: int) -> str:
        """Where a version's snapshot lives, as a URL (the registry's ``source``)."""
        return self._fs.unstrip_protocol(self._path(version))

    def delete(self, version: int) -> None:
        """Remove one version's snapshot file (retention); a missing one is not an error."""
        try:
            self._fs.rm_file(self._path(version))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SnapshotError(f"cannot delete version {version}: {exc}") from exc

    def load(self, version: int) -> tuple[dict[str, Any], Any]:
        """Verified metadata and state; raises ``SnapshotIntegrityError`` on bad bytes."""
        return unseal(self._read(version), self._key)


def _write_local_atomic(path: str, blob: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)  # a full disk must not also fill up with partial versions
        raise
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
