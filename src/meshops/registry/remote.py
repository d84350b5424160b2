"""What the registry does differently over HTTP; the rest of the client is derived from the
declarations in `registry.interface`. Models are packaged and loaded in the caller's
process: log_model saves through the flavor locally and uploads the files; load_model
downloads the version's files and loads them here, so no model object crosses the wire
pickled."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from meshops.kernel.rpc import RemoteArea
from meshops.registry.models import (
    ModelFile,
    ModelVersion,
    Signature,
    check_metrics,
    check_model_name,
    check_version,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.registry.comparison import ModelComparison
    from meshops.registry.interface import Registry
    from meshops.registry.loaded import LoadedModel


class RemoteRegistryBase(RemoteArea):
    def _registry(self) -> Registry:
        registry: Registry = self  # type: ignore[assignment]  # with its derived half
        return registry

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
            files = [self._upload(root, path) for path in sorted(root.rglob("*"))]
        return self._registry().register_files(
            name,
            [f for f in files if f is not None],
            flavor_name,
            signature=inferred,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def _upload(self, root: Path, path: Path) -> ModelFile | None:
        if not path.is_file():
            return None
        data = path.read_bytes()
        digest = self.upload_file(data)
        return ModelFile(path=path.relative_to(root).as_posix(), digest=digest, size=len(data))

    def upload_file(self, data: bytes) -> str:
        body = self.http.request(
            "POST",
            "/v1/models/-/files",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        return str(body["digest"])

    def read_file(self, name: str, version: int, path: str) -> bytes:
        model = quote(check_model_name(name), safe="")
        url = f"/v1/models/{model}/versions/{check_version(version)}/files/{quote(path, safe='/')}"
        data = self.http.get(url)
        return data if isinstance(data, bytes) else b""  # an empty body decodes to None

    def compare(
        self,
        name: str,
        version: int,
        *,
        alias: str = "champion",
        data: pa.Table,
        label: str,
        metric: str | None = None,
        feedback: pa.Table | None = None,
        data_urn: str | None = None,
        trust: bool = False,
        use_feedback: bool = True,
    ) -> ModelComparison:
        # Scored here (the models load in this process), recorded by the server.
        from meshops.registry.evaluation import compare_versions

        return compare_versions(
            self._registry(),
            name,
            version,
            alias=alias,
            data=data,
            label=label,
            metric=metric,
            feedback=feedback,
            data_urn=data_urn,
            trust=trust,
            use_feedback=use_feedback,
        )

    def load_model(
        self, uri: str, trust: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        from meshops.registry.loaded import load_directory, materialize

        version = self._registry().resolve(uri)
        with tempfile.TemporaryDirectory(prefix="meshops-load-") as tmp:
            for file in version.files:
                data = self.read_file(version.name, version.version, file.path)
                materialize(Path(tmp), file, data)
            return load_directory(version, Path(tmp), trust, trusted_types)
