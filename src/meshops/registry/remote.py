"""The registry over HTTP. Models are packaged and loaded in the caller's process: log_model
saves through the flavor locally and uploads the files; load_model downloads the
version's files and loads them here, so no model object crosses the wire pickled."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from meshops.kernel.http import HttpTransport
from meshops.registry.models import (
    AliasMove,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    Signature,
    VersionStatus,
    check_metrics,
    check_model_name,
    check_version,
)

if TYPE_CHECKING:
    from meshops.registry.loaded import LoadedModel


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if value is not None else None


class RemoteRegistry:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    @staticmethod
    def _model_path(name: str) -> str:
        return f"/v1/models/{quote(check_model_name(name), safe='')}"

    def _version_path(self, name: str, version: int) -> str:
        return f"{self._model_path(name)}/versions/{check_version(version)}"

    def create_model(
        self,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel:
        body: dict[str, Any] = {"name": name, "description": description, "tags": tags or {}}
        body |= {"owner": owner, "domain": domain}
        return RegisteredModel.model_validate(self.http.post("/v1/models", body))

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self.http.get(self._model_path(name)))

    def list_models(self, domain: str | None = None) -> list[RegisteredModel]:
        return [
            RegisteredModel.model_validate(m) for m in self.http.get("/v1/models", domain=domain)
        ]

    def update_model(
        self,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel:
        body = {"description": description, "tags": tags, "owner": owner, "domain": domain}
        return RegisteredModel.model_validate(
            self.http.request("PATCH", self._model_path(name), json=body)
        )

    def log_model(
        self,
        name: str,
        model: Any,
        *,
        flavor: str | None = None,
        input_example: Any = None,
        signature: Signature | None = None,
        run_id: str | None = None,
        metrics: dict[str, float] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        flavor_options: dict[str, Any] | None = None,
    ) -> ModelVersion:
        from meshops.registry.loaded import package_model

        check_model_name(name)
        check_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="meshops-model-") as tmp:
            root = Path(tmp)
            flavor_name, inferred = package_model(
                model,
                root,
                flavor=flavor,
                input_example=input_example,
                signature=signature,
                options=flavor_options,
            )
            files = []
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                data = path.read_bytes()
                files.append(
                    ModelFile(
                        path=path.relative_to(root).as_posix(),
                        digest=self.upload_file(data),
                        size=len(data),
                    )
                )
        return self.register_files(
            name,
            files,
            flavor_name,
            signature=inferred,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def create_version(
        self,
        name: str,
        *,
        run_id: str,
        artifact_path: str,
        flavor: str | None = None,
        signature: Signature | None = None,
        metrics: dict[str, float] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        metrics = check_metrics(metrics)
        body = {
            "run_id": run_id,
            "artifact_path": artifact_path,
            "flavor": flavor,
            "signature": _dump(signature),
            "metrics": metrics,
            "description": description,
            "tags": tags,
        }
        path = f"{self._model_path(name)}/versions/from-run"
        return ModelVersion.model_validate(self.http.post(path, body))

    def upload_file(self, data: bytes) -> str:
        body = self.http.request(
            "POST",
            "/v1/models/-/files",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        return str(body["digest"])

    def register_files(
        self,
        name: str,
        files: list[ModelFile],
        flavor: str,
        *,
        signature: Signature | None = None,
        run_id: str | None = None,
        metrics: dict[str, float] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        metrics = check_metrics(metrics)  # NaN cannot even be sent as JSON
        body = {
            "files": [f.model_dump() for f in files],
            "flavor": flavor,
            "signature": _dump(signature),
            "run_id": run_id,
            "metrics": metrics,
            "description": description,
            "tags": tags,
        }
        path = f"{self._model_path(name)}/versions"
        return ModelVersion.model_validate(self.http.post(path, body))

    def get_version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion.model_validate(self.http.get(self._version_path(name, version)))

    def list_versions(self, name: str) -> list[ModelVersion]:
        body = self.http.get(f"{self._model_path(name)}/versions")
        return [ModelVersion.model_validate(v) for v in body]

    def update_version(
        self,
        name: str,
        version: int,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        status: VersionStatus | None = None,
    ) -> ModelVersion:
        body = {"description": description, "tags": tags, "status": status}
        path = self._version_path(name, version)
        return ModelVersion.model_validate(self.http.request("PATCH", path, json=body))

    def set_model_card(self, name: str, version: int, markdown: str) -> None:
        self.http.put(f"{self._version_path(name, version)}/card", {"markdown": markdown})

    def get_model_card(self, name: str, version: int) -> str:
        return str(self.http.get(f"{self._version_path(name, version)}/card")["markdown"])

    def resolve(self, uri: str) -> ModelVersion:
        return ModelVersion.model_validate(self.http.get("/v1/models/-/resolve", uri=uri))

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> AliasMove:
        path = f"{self._model_path(name)}/aliases/{quote(alias, safe='')}"
        return AliasMove.model_validate(self.http.put(path, {"version": version, "reason": reason}))

    def delete_alias(self, name: str, alias: str, reason: str = "") -> AliasMove:
        path = f"{self._model_path(name)}/aliases/{quote(alias, safe='')}"
        return AliasMove.model_validate(self.http.delete(path, reason=reason))

    def alias_history(
        self, name: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        body = self.http.get(f"{self._model_path(name)}/alias-history", alias=alias, limit=limit)
        return [AliasMove.model_validate(m) for m in body]

    def read_file(self, name: str, version: int, path: str) -> bytes:
        url = f"{self._version_path(name, version)}/files/{quote(path, safe='/')}"
        data = self.http.get(url)
        return data if isinstance(data, bytes) else b""  # an empty body decodes to None

    def load_model(
        self, uri: str, trust: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        from meshops.registry.loaded import load_directory, materialize

        version = self.resolve(uri)
        with tempfile.TemporaryDirectory(prefix="meshops-load-") as tmp:
            for file in version.files:
                data = self.read_file(version.name, version.version, file.path)
                materialize(Path(tmp), file, data)
            return load_directory(version, Path(tmp), trust, trusted_types)
