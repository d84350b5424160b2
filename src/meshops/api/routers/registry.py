"""Model registry: models, versions, model cards, aliases and model file downloads."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.bounds import Limit, Version
from meshops.kernel.home import Context
from meshops.registry.models import (
    AliasMove,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    Signature,
    VersionStatus,
)
from meshops.registry.service import RegistryService, file_too_large, max_file_bytes

router = APIRouter(prefix="/v1/models", tags=["registry"])


class ModelIn(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    domain: str | None = None


class ModelPatch(BaseModel):
    description: str | None = None
    tags: dict[str, str] | None = None
    owner: str | None = None
    domain: str | None = None


class VersionFields(BaseModel):
    signature: Signature | None = None
    metrics: dict[str, float] | None = None
    description: str = ""
    tags: dict[str, str] | None = None


class FilesVersionIn(VersionFields):
    files: list[ModelFile]
    flavor: str
    run_id: str | None = None


class RunVersionIn(VersionFields):
    run_id: str
    artifact_path: str
    flavor: str | None = None


class VersionPatch(BaseModel):
    description: str | None = None
    tags: dict[str, str] | None = None
    status: VersionStatus | None = None


class CardIn(BaseModel):
    markdown: str


class AliasIn(BaseModel):
    version: Version
    reason: str = ""


def _service(ctx: Context = Depends(get_context)) -> RegistryService:
    return RegistryService(ctx)


@router.get("")
def list_models(
    domain: str | None = None, registry: RegistryService = Depends(_service)
) -> list[RegisteredModel]:
    return registry.list_models(domain)


@router.post("", status_code=201)
def create_model(body: ModelIn, registry: RegistryService = Depends(_service)) -> RegisteredModel:
    return registry.create_model(body.name, body.description, body.tags, body.owner, body.domain)


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


@router.get("/-/resolve")
def resolve(uri: str, registry: RegistryService = Depends(_service)) -> ModelVersion:
    return registry.resolve(uri)


@router.get("/{name}")
def get_model(name: str, registry: RegistryService = Depends(_service)) -> RegisteredModel:
    return registry.get_model(name)


@router.patch("/{name}")
def update_model(
    name: str, body: ModelPatch, registry: RegistryService = Depends(_service)
) -> RegisteredModel:
    return registry.update_model(name, body.description, body.tags, body.owner, body.domain)


@router.get("/{name}/versions")
def list_versions(name: str, registry: RegistryService = Depends(_service)) -> list[ModelVersion]:
    return registry.list_versions(name)


@router.post("/{name}/versions", status_code=201)
def register_files(
    name: str, body: FilesVersionIn, registry: RegistryService = Depends(_service)
) -> ModelVersion:
    return registry.register_files(
        name,
        body.files,
        body.flavor,
        signature=body.signature,
        run_id=body.run_id,
        metrics=body.metrics,
        description=body.description,
        tags=body.tags,
    )


@router.post("/{name}/versions/from-run", status_code=201)
def create_version(
    name: str, body: RunVersionIn, registry: RegistryService = Depends(_service)
) -> ModelVersion:
    return registry.create_version(
        name,
        run_id=body.run_id,
        artifact_path=body.artifact_path,
        flavor=body.flavor,
        signature=body.signature,
        metrics=body.metrics,
        description=body.description,
        tags=body.tags,
    )


@router.get("/{name}/versions/{version}")
def get_version(
    name: str, version: Version, registry: RegistryService = Depends(_service)
) -> ModelVersion:
    return registry.get_version(name, version)


@router.patch("/{name}/versions/{version}")
def update_version(
    name: str, version: Version, body: VersionPatch, registry: RegistryService = Depends(_service)
) -> ModelVersion:
    return registry.update_version(name, version, body.description, body.tags, body.status)


@router.get("/{name}/versions/{version}/card")
def get_model_card(
    name: str, version: Version, registry: RegistryService = Depends(_service)
) -> dict[str, str]:
    return {"markdown": registry.get_model_card(name, version)}


@router.put("/{name}/versions/{version}/card")
def set_model_card(
    name: str, version: Version, body: CardIn, registry: RegistryService = Depends(_service)
) -> dict[str, str]:
    registry.set_model_card(name, version, body.markdown)
    return {"status": "saved"}


@router.get("/{name}/versions/{version}/files/{path:path}")
def download_file(
    name: str, version: Version, path: str, registry: RegistryService = Depends(_service)
) -> Response:
    data = registry.read_file(name, version, path)
    return Response(content=data, media_type="application/octet-stream")


@router.put("/{name}/aliases/{alias}")
def set_alias(
    name: str, alias: str, body: AliasIn, registry: RegistryService = Depends(_service)
) -> AliasMove:
    return registry.set_alias(name, alias, body.version, body.reason)


@router.delete("/{name}/aliases/{alias}")
def delete_alias(
    name: str, alias: str, reason: str = "", registry: RegistryService = Depends(_service)
) -> AliasMove:
    return registry.delete_alias(name, alias, reason)


@router.get("/{name}/alias-history")
def alias_history(
    name: str,
    alias: str | None = None,
    limit: Limit = 100,
    registry: RegistryService = Depends(_service),
) -> list[AliasMove]:
    return registry.alias_history(name, alias, limit)
