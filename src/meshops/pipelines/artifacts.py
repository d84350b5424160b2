"""Where executors read and write step artifacts: the home's blob store, or the server's
blob endpoints when the platform is remote. A `StoreSpec` is small and picklable, so a
process-pool child or a Ray task opens the same store the run records into."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from meshops.kernel.blobs import BlobStore

if TYPE_CHECKING:
    from meshops.kernel.http import HttpTransport


class ArtifactStore(Protocol):
    def put_bytes(self, data: bytes) -> str: ...

    def get_bytes(self, digest: str) -> bytes: ...


@dataclass(frozen=True, eq=False)
class StoreSpec:
    kind: str  # "blobs" or "http"
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    token: str | None = None


class HttpArtifactStore:
    """Artifacts through the server (`/v1/pipelines/artifacts`), for remote platforms: raw
    bytes under their sha256, not JSON."""

    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        headers = {"content-type": "application/octet-stream"}
        body = self.http.request("PUT", _path(digest), content=data, headers=headers)
        return str(body["digest"])

    def get_bytes(self, digest: str) -> bytes:
        return bytes(self.http.request("GET", _path(digest)))


def _path(digest: str) -> str:
    return f"/v1/pipelines/artifacts/{quote(digest, safe='')}"


_opened: dict[tuple[str, str, str, str | None], ArtifactStore] = {}


def open_store(spec: StoreSpec) -> ArtifactStore:
    """The store a spec names, opened once per process."""
    key = (spec.kind, spec.url, json.dumps(spec.options, sort_keys=True), spec.token)
    store = _opened.get(key)
    if store is None:
        if spec.kind == "http":
            from meshops.kernel.http import HttpTransport

            store = HttpArtifactStore(HttpTransport(spec.url, spec.token))
        else:
            store = BlobStore(spec.url, spec.options)
        _opened[key] = store
    return store
