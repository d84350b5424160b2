"""The registry routes that differ from their declaration (the others are derived from
`meshops.registry.interface`): model file bytes, uploaded as a stream and downloaded."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.bounds import Version
from meshops.kernel.home import Context
from meshops.registry.service import RegistryService, file_too_large, max_file_bytes

router = APIRouter(prefix="/v1/models", tags=["registry"])


def _service(ctx: Context = Depends(get_context)) -> RegistryService:
    return RegistryService(ctx)


@router.post("/-/files", status_code=201)
async def upload_file(
    request: Request, registry: RegistryService = Depends(_service)
) -> dict[str, Any]:
    """Upload one model file's bytes (the body); returns its sha256 digest. The body is
    streamed to a temp file and cut off past `[registry] max_file_mb` (413)."""
    limit = max_file_bytes(registry.ctx.home.settings)
    with tempfile.TemporaryDirectory(prefix="meshops-upload-") as tmp:
        path = Path(tmp) / "file"
        size = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise file_too_large(limit)
                out.write(chunk)
        digest = await run_in_threadpool(registry.upload_path, path)
    return {"digest": digest, "size": size}


@router.get("/{name}/versions/{version}/files/{path:path}")
def download_file(
    name: str, version: Version, path: str, registry: RegistryService = Depends(_service)
) -> Response:
    data = registry.read_file(name, version, path)
    return Response(content=data, media_type="application/octet-stream")
