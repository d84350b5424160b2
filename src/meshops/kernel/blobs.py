"""Content-addressed blob store over fsspec: a local directory or S3-compatible storage.

Blobs are named by the sha256 of their bytes, so writing the same content twice is free
and a blob, once visible, never changes. Writes are atomic: a local blob appears by
rename of a finished temp file; an object-store PUT is atomic by itself. Temp files that a
killed process left behind in `<root>/tmp` are removed when a store opens, once they are
older than `STALE_TMP_SECONDS` (a write in progress keeps touching its file).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from meshops.kernel.errors import InvalidInput, NoSpace, NotFound

CHUNK = 1 << 20
STALE_TMP_SECONDS = 3600.0


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput(f"not a sha256 digest: {digest!r}")
    return digest


def remove_stale_tmp(tmp_dir: Path, older_than: float = STALE_TMP_SECONDS) -> int:
    """Delete the files in `tmp_dir` not modified for `older_than` seconds; returns how many."""
    cutoff = time.time() - older_than
    removed = 0
    for entry in os.scandir(tmp_dir):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # another process cleaned it first
    return removed


class BlobStore:
    """`put_*` returns the digest; `open`/`get_bytes`/`local_path` read by digest."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **(options or {}))
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            Path(self.root, "tmp").mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(Path(self.root, "tmp"))

    def key(self, digest: str) -> str:
        _check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest[2:]}"

    def uri(self, digest: str) -> str:
        """A URL any fsspec client (DuckDB, pyarrow) can read the blob from."""
        key = self.key(digest)
        return key if self.is_local else f"{self._protocol()}://{key}"

    def _protocol(self) -> str:
        proto = self.fs.protocol
        return str(proto[0] if isinstance(proto, tuple) else proto)

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self.key(digest)))

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        if self.is_local:
            with self._no_space_as_error(), self._local_temp() as tmp:
                tmp.write_bytes(data)
                self._publish_local(tmp, digest)
        else:
            self.fs.pipe_file(self.key(digest), data)
        return digest

    def put_file(self, path: str | Path) -> str:
        digest = sha256_file(path)
        if self.exists(digest):
            return digest
        if self.is_local:
            with self._no_space_as_error(), self._local_temp() as tmp:
                shutil.copyfile(path, tmp)
                self._publish_local(tmp, digest)
        else:
            self.fs.put_file(str(path), self.key(digest))
        return digest

    @contextmanager
    def writer(self) -> Iterator[tuple[IO[bytes], list[str]]]:
        """Stream bytes in; the digest is appended to the returned list when the block ends."""
        result: list[str] = []
        fd, name = tempfile.mkstemp(prefix="blob-", dir=self._tmp_dir())
        try:
            with self._no_space_as_error(), os.fdopen(fd, "wb") as fh:
                yield fh, result
            result.append(self._keep_written(Path(name)))
        finally:
            Path(name).unlink(missing_ok=True)

    def _keep_written(self, path: Path) -> str:
        """A finished temp file becomes the blob: locally it is renamed into place (no copy,
        so a blob never needs twice its size in free space)."""
        if not self.is_local:
            return self.put_file(path)
        digest = sha256_file(path)
        if not self.exists(digest):
            with self._no_space_as_error():
                self._publish_local(path, digest)
        return digest

    @contextmanager
    def _no_space_as_error(self) -> Iterator[None]:
        """A full disk is the caller's clear error (`NoSpace`), not an OSError; the temp
        file of the write is removed by the caller's cleanup, so nothing partial stays."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise NoSpace(
                f"no space left on device: the blob store at {self.url} is full; nothing was "
                "stored",
                {"fix": "free space on the blob store's disk and retry"},
            ) from exc

    def get_bytes(self, digest: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self.key(digest))
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} is not in the store at {self.url}") from exc
        return data

    def open(self, digest: str) -> IO[bytes]:
        try:
            fh: IO[bytes] = self.fs.open(self.key(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} is not in the store at {self.url}") from exc
        return fh

    @contextmanager
    def local_path(self, digest: str) -> Iterator[Path]:
        """A local file with the blob's bytes (the blob itself when the store is local)."""
        if self.is_local:
            path = Path(self.key(digest))
            if not path.exists():
                raise NotFound(f"blob {digest} is not in the store at {self.url}")
            yield path
            return
        fd, name = tempfile.mkstemp(prefix="blob-")
        os.close(fd)
        try:
            self.fs.get_file(self.key(digest), name)
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def _tmp_dir(self) -> str | None:
        return str(Path(self.root, "tmp")) if self.is_local else None

    @contextmanager
    def _local_temp(self) -> Iterator[Path]:
        tmp = Path(self.root, "tmp", f"{uuid.uuid4().hex}.part")
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def _publish_local(self, tmp: Path, digest: str) -> None:
        final = Path(self.key(digest))
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
