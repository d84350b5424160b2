"""The registry API, declared once for both transports (`meshops.kernel.rpc`):
`RegistryService` implements it in-process; the routes and the HTTP client are derived from
the declarations. Written by hand (`registry.remote`, `api.routers.registry`): what runs in
the caller's process (packaging and loading models) and the model files' bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from meshops.kernel import rpc
from meshops.kernel.bounds import Days, Limit, Version
from meshops.registry.comparison import ComparisonScores, ModelComparison
from meshops.registry.models import (
    AliasMove,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    Signature,
    VersionStatus,
)

if TYPE_CHECKING:  # loading pulls in numpy; the SDK imports this module at start
    import pyarrow as pa

    from meshops.registry.loaded import LoadedModel


class Registry(Protocol):
    @rpc.post("/v1/models", status=201)
    def create_model(
        self,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel: ...

    @rpc.get("/v1/models/{name}")
    def get_model(self, name: str) -> RegisteredModel: ...

    @rpc.get("/v1/models")
    def list_models(self, domain: str | None = None) -> list[RegisteredModel]: ...

    @rpc.patch("/v1/models/{name}")
    def update_model(
        self,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel: ...

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
        """Save an in-memory model through its flavor (detected unless given) and register
        it as the next version of `name` (the model is created on first use). With
        `run_id`, the run's latest metrics (then `metrics`) and input datasets are copied and
        lineage edges run -> version and dataset -> version are recorded."""
        ...

    @rpc.post("/v1/models/{name}/versions/from-run", status=201)
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
        """Register the files a run logged under `artifact_path` (referenced by digest)."""
        ...

    def upload_file(self, data: bytes) -> str:
        """Put model file bytes into the blob store; returns the sha256 digest."""
        ...

    @rpc.post("/v1/models/{name}/versions", status=201)
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
        """Register files already in the blob store (what `log_model` does after saving)."""
        ...

    @rpc.get("/v1/models/{name}/versions/{version}")
    def get_version(self, name: str, version: Version) -> ModelVersion: ...

    @rpc.get("/v1/models/{name}/versions")
    def list_versions(self, name: str) -> list[ModelVersion]: ...

    @rpc.patch("/v1/models/{name}/versions/{version}")
    def update_version(
        self,
        name: str,
        version: Version,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        status: VersionStatus | None = None,
    ) -> ModelVersion: ...

    @rpc.put("/v1/models/{name}/versions/{version}/card", status=204)
    def set_model_card(self, name: str, version: Version, markdown: str) -> None: ...

    @rpc.get("/v1/models/{name}/versions/{version}/card")
    def get_model_card(self, name: str, version: Version) -> str: ...

    @rpc.get("/v1/models/-/resolve")
    def resolve(self, uri: str) -> ModelVersion:
        """`models:/name/3`, `models:/name@champion` or `models:/name/latest`."""
        ...

    @rpc.put("/v1/models/{name}/aliases/{alias}")
    def set_alias(self, name: str, alias: str, version: Version, reason: str = "") -> AliasMove:
        """Point `alias` at `version` (the promotion gate, if configured, decides first)."""
        ...

    @rpc.delete("/v1/models/{name}/aliases/{alias}")
    def delete_alias(self, name: str, alias: str, reason: str = "") -> AliasMove: ...

    @rpc.get("/v1/models/{name}/alias-history")
    def alias_history(
        self, name: str, alias: str | None = None, limit: Limit = 100
    ) -> list[AliasMove]: ...

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
        """Score v`version` and the current holder of `alias` on the same rows in this
        process: `data`, plus labelled serving feedback (`feedback` when given, else with
        `use_feedback` what the endpoints serving the model logged with labels in the last
        30 days, `feedback_window`). Record the scores with `record_comparison`: a tracking
        run with both scores, linked in lineage, which the promotion gate reads. `metric`:
        the primary metric unless one is declared (`[promotion] metric`, tag
        `meshops.metric`); by default roc_auc (classification, accuracy without
        probabilities) or rmse (regression). `data_urn` names the data
        (e.g. the training set's URN) in lineage. `trust=True` loads pickled models."""
        ...

    @rpc.post("/v1/models/{name}/versions/{version}/comparisons", status=201)
    def record_comparison(
        self, name: str, version: Version, scores: ComparisonScores
    ) -> ModelComparison:
        """Record scores measured by `compare`: checks that they name v`version` and the
        alias's current holder, decides the verdict from the server's metric table and
        `[promotion] tolerance`, creates the tracking run and the lineage edges."""
        ...

    @rpc.get("/v1/models/{name}/feedback")
    def feedback_window(self, name: str, days: Days = 30) -> pa.Table:
        """Labelled predictions (inputs and `label`) that the endpoints serving `name`
        logged in the last `days` days: what `compare` adds to its evaluation rows. An empty
        table when there are none."""
        ...

    @rpc.get("/v1/models/{name}/comparisons")
    def list_comparisons(
        self, name: str, version: Version | None = None, limit: Limit = 100
    ) -> list[ModelComparison]:
        """Recorded comparisons of `name` (of challenger `version`), newest first."""
        ...

    def read_file(self, name: str, version: int, path: str) -> bytes: ...

    def load_model(
        self, uri: str, trust: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        """Load into this process. `trust=True` is needed for pickled Python models;
        `trusted_types` extends the scikit-learn/NumPy/SciPy allow-list for skops files."""
        ...
