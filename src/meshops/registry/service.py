"""Registry use cases: one transaction each, authorised and audited inside.

Model files are written to the blob store before the transaction that registers the
version (content-addressed, so an aborted registration leaves only unreferenced blobs).
Runs are read through the tracking area's service, never its tables.

A digest is not a capability: a new version may name only blobs its caller uploaded
(`upload_file` records who did), blobs an existing version already holds, or artifacts of
the run it names (read through tracking, which checks the caller may read that run).
Every version's files are validated when it is registered (`Flavor.validate`: skops types
against the explicit list, ONNX loads, torch weights load with `weights_only`), so a bad
file is a 422 then, not a failure when it is served.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel import lineage, openlineage, outbox
from meshops.kernel.codetrust import is_api_server
from meshops.kernel.db import insert_ignoring_conflicts, utcnow
from meshops.kernel.errors import Conflict, InvalidInput, MeshopsError, NotFound
from meshops.kernel.home import Context
from meshops.kernel.plugins import load_object
from meshops.kernel.ports import FEEDBACK_WINDOWS, PROMOTION_GATE, PromotionGate
from meshops.kernel.urn import Urn, model_version_urn, run_urn
from meshops.registry import store
from meshops.registry.comparison import (
    METRIC_TAG,
    METRICS,
    ComparisonScores,
    ModelComparison,
    direction_of,
    promotion_tolerance,
    worse_by,
)
from meshops.registry.events import ModelAliasMoved, ModelVersionRegistered
from meshops.registry.models import (
    MAX_DESCRIPTION,
    MAX_MODEL_CARD,
    AliasMove,
    DatasetRef,
    ModelFile,
    ModelRef,
    ModelVersion,
    RegisteredModel,
    Signature,
    VersionStatus,
    check_alias,
    check_metrics,
    check_model_name,
    check_relative,
    check_tags,
    check_text,
    check_version,
    parse_model_uri,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.registry.loaded import LoadedModel
    from meshops.tracking.interface import Tracking
    from meshops.tracking.models import Run

MAX_FILES = 10_000
MAX_FEEDBACK_DAYS = 3660
# `[registry] max_file_mb`: the largest model file one upload may carry (413 above); by
# default the server's upload limit (`[server] max_upload_mb`).
DEFAULT_MAX_FILE_MB = 512.0
MIB = 1024 * 1024


class FileTooLarge(InvalidInput):
    error = "payload_too_large"
    http_status = 413


def max_file_bytes(settings: Any) -> int:
    """The per-file upload limit of this home (`[registry] max_file_mb`)."""
    default = getattr(settings, "max_upload_mb", DEFAULT_MAX_FILE_MB)
    raw = settings.section("registry").get("max_file_mb", default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0 < value <= 1024 * 1024:
        raise InvalidInput(
            f"[registry] max_file_mb must be a positive number of MiB, got {raw!r}",
            {"field": "registry.max_file_mb", "fix": "e.g. max_file_mb = 512"},
        )
    return int(value * MIB)


def file_too_large(limit: int) -> FileTooLarge:
    return FileTooLarge(
        f"the model file is larger than {limit / MIB:g} MiB",
        {
            "field": "body",
            "limit_bytes": limit,
            "fix": "upload a smaller file, or ask an admin to raise [registry] max_file_mb",
        },
    )


def trusted_skops_types(settings: Any) -> list[str]:
    """Names an admin allowed in skops files on top of the built-in list
    (`[registry] trusted_skops_types`, exact names)."""
    names = settings.section("registry").get("trusted_skops_types", [])
    return [str(n) for n in names] if isinstance(names, list) else []


class OpenGate:
    """No gate: every alias move the actor is authorised for goes ahead. Used only where a
    caller runs the real gate itself (platform.project), or when a home's operator sets
    `[registry] promotion_gate = "open"`, which turns the `model.promote` policies off for
    alias moves in that home (docs/governance.md)."""

    def check(self, ctx: Context, version: ModelVersion, alias: str, current: int | None) -> None:
        return None


OPEN_GATE = "open"
# Homes initialised before the default gate was wired name it by its old path: the same gate.
_FORMER_DEFAULT = "meshops.project.promotion:PromotionGate"


class _ConfiguredGate:
    """The home's gate, built when an alias first moves (not at construction: most
    registry calls never move one): the class `path` names, else the default gate the
    assembly wires (kernel.ports.PROMOTION_GATE, the project area's)."""

    def __init__(self, path: str | None, home: Any) -> None:
        self.path = path
        self.home = home
        self.gate: PromotionGate | None = None

    def check(self, ctx: Context, version: ModelVersion, alias: str, current: int | None) -> None:
        if self.gate is None:
            factory = PROMOTION_GATE.get() if self.path is None else load_object(self.path)
            self.gate = factory(self.home)
        self.gate.check(ctx, version, alias, current)


def configured_gate(ctx: Context) -> PromotionGate:
    """The promotion gate of the home: the default one (the `model.promote` policies,
    metric comparison and approvals for the protected aliases) unless `[registry]
    promotion_gate` in meshops.toml names another class ("package.module:Class",
    constructed with the Home; it raises PolicyViolation to refuse), or is "open" (no gate)."""
    path = str(ctx.home.settings.section("registry").get("promotion_gate") or "")
    if path == OPEN_GATE:
        return OpenGate()
    return _ConfiguredGate(path if path not in ("", _FORMER_DEFAULT) else None, ctx.home)


class RegistryService:
    def __init__(self, ctx: Context, gate: PromotionGate | None = None) -> None:
        self.ctx = ctx
        self.gate = gate or configured_gate(ctx)

    # --- registered models --------------------------------------------------------

    def create_model(
        self,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel:
        check_model_name(name)
        self.ctx.authorize("registry.write", domain)
        values = self._new_model_values(name, description, tags, owner=owner, domain=domain)
        with self.ctx.db.begin() as conn:
            if store.get_model_row(conn, name) is not None:
                raise Conflict(
                    f"model {name!r} already exists",
                    {"field": "name", "fix": "pick another name or register a new version"},
                )
            store.insert_model(conn, values)
            self.ctx.audit(conn, "registry.create_model", _model_urn(name), after=values)
            return store.load_model(conn, store.get_model_row(conn, name))

    def get_model(self, name: str) -> RegisteredModel:
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            return store.load_model(conn, _model_row(conn, name))

    def list_models(self, domain: str | None = None) -> list[RegisteredModel]:
        self.ctx.authorize("registry.read", domain)
        with self.ctx.db.read() as conn:
            return store.list_models(conn, domain)

    def update_model(
        self,
        name: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        owner: str | None = None,
        domain: str | None = None,
    ) -> RegisteredModel:
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = check_text(description, "description", MAX_DESCRIPTION)
        if tags is not None:
            values["tags"] = check_tags(tags)
        if owner is not None:
            values["owner"] = owner
        if domain is not None:
            values["domain"] = domain
        with self.ctx.db.begin() as conn:
            row = _model_row(conn, name)
            self.ctx.authorize("registry.write", row["domain"])
            if domain is not None and domain != row["domain"]:
                # Moving a model hands it to another domain: the caller must write there too.
                self.ctx.authorize("registry.write", domain)
            if values:
                values["updated_at"] = utcnow()
                store.update_model(conn, name, values)
                self.ctx.audit(
                    conn,
                    "registry.update_model",
                    _model_urn(name),
                    before=_jsonable(row, values),
                    after=values,
                )
            return store.load_model(conn, _model_row(conn, name))

    # --- versions -----------------------------------------------------------------

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
        self.ctx.authorize("registry.write", self._domain_of(name))
        with tempfile.TemporaryDirectory(prefix="meshops-model-") as tmp:
            flavor_name, inferred = package_model(
                model,
                Path(tmp),
                flavor=flavor,
                input_example=input_example,
                signature=signature,
                options=flavor_options,
            )
            files = [
                ModelFile(path=rel, digest=self.ctx.blobs.put_file(path), size=size)
                for rel, path, size in _walk(Path(tmp))
            ]
        return self._register(
            name,
            files,
            flavor_name,
            signature=inferred,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
            produced_here={f.digest for f in files},
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
        from meshops.registry.flavors import flavor_from_files, get_flavor

        check_model_name(name)
        self.ctx.authorize("registry.write", self._domain_of(name))
        prefix = artifact_path.strip("/")
        files = [
            ModelFile(path=rel, digest=a.digest, size=a.size)
            for a in self._tracking().list_artifacts(run_id, prefix)
            if (rel := _relative_to(a.path, prefix)) is not None
        ]
        if not files:
            raise NotFound(
                f"run {run_id} has no artifacts under {artifact_path!r}",
                {"field": "artifact_path", "fix": "log the model folder with log_artifact first"},
            )
        chosen = get_flavor(flavor) if flavor else flavor_from_files([f.path for f in files])
        return self.register_files(
            name,
            files,
            chosen.name,
            signature=signature,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def upload_file(self, data: bytes) -> str:
        """Store one model file's bytes; the caller may then name the digest in a version."""
        self.ctx.authorize("registry.write")
        limit = max_file_bytes(self.ctx.home.settings)
        if len(data) > limit:
            raise file_too_large(limit)
        return self._receipt(self.ctx.blobs.put_bytes(data))

    def upload_path(self, path: Path) -> str:
        """`upload_file` for bytes already in a local file (the HTTP route streams there)."""
        self.ctx.authorize("registry.write")
        limit = max_file_bytes(self.ctx.home.settings)
        if path.stat().st_size > limit:
            raise file_too_large(limit)
        return self._receipt(self.ctx.blobs.put_file(path))

    def _receipt(self, digest: str) -> str:
        row = {"digest": digest, "kind": store.UPLOAD, "holder": self.ctx.actor.name}
        with self.ctx.db.begin() as conn:
            store.add_file_refs(conn, [{**row, "at": utcnow()}])
        return digest

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
        """A version of files already in the blob store: each must have been uploaded by the
        caller, be held by an existing version, or be an artifact of the run `run_id`."""
        return self._register(
            name,
            files,
            flavor,
            signature=signature,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
            produced_here=set(),
        )

    def _register(
        self,
        name: str,
        files: list[ModelFile],
        flavor: str,
        *,
        signature: Signature | None,
        run_id: str | None,
        metrics: dict[str, float] | None,
        description: str,
        tags: dict[str, str] | None,
        produced_here: set[str],
    ) -> ModelVersion:
        from meshops.registry.flavors import get_flavor

        check_model_name(name)
        chosen = get_flavor(flavor)
        self.ctx.authorize("registry.write", self._domain_of(name))
        self._check_files(files)
        check_text(description, "description", MAX_DESCRIPTION)
        clean_tags = check_tags(tags)
        explicit = check_metrics(metrics)
        run = self._tracking().get_run(run_id) if run_id else None
        self._check_references(files, produced_here, run_id if run else None)
        self._validate_files(chosen, files)
        merged = {**_finite(run.metrics if run else {}), **explicit}
        inputs = [DatasetRef(urn=i.urn, digest=i.digest) for i in (run.inputs if run else [])]
        with self.ctx.db.begin() as conn:
            now = utcnow()
            insert_ignoring_conflicts(
                conn,
                store.registered_models,
                [self._new_model_values(name, "", None, owner=None, domain=None, now=now)],
                ["name"],
            )
            store.get_model_row(conn, name, lock=True)
            version = store.next_version(conn, name)
            values = {
                "model_name": name,
                "version": version,
                "flavor": flavor,
                "signature": signature.model_dump(mode="json") if signature else None,
                "files": [f.model_dump() for f in files],
                "metrics": merged,
                "run_id": run.id if run else None,
                "input_datasets": [d.model_dump() for d in inputs],
                "status": VersionStatus.READY.value,
                "created_by": self.ctx.actor.name,
                "created_at": now,
                "tags": clean_tags,
                "description": description,
                "model_card": "",
            }
            store.insert_version(conn, values)
            holder = f"{name}/{version}"
            store.add_file_refs(
                conn,
                [
                    {"digest": f.digest, "kind": store.VERSION, "holder": holder, "at": now}
                    for f in {f.digest: f for f in files}.values()
                ],
            )
            created = store.to_version(values, [])
            self._record_registration(conn, created, run)
        openlineage.report_registration(self.ctx, name, version, [d.urn for d in inputs])
        return created

    def _record_registration(
        self, conn: Connection, version: ModelVersion, run: Run | None
    ) -> None:
        urn = version.urn
        edges = [(d.urn, urn, "trained_on") for d in version.input_datasets]
        if run is not None:
            edges.insert(0, (run_urn(run.id), urn, "produced"))
        if edges:
            lineage.add_edges(conn, edges)
        self.ctx.link_to_step(conn, urn)  # inside a pipeline step
        summary = {
            "name": version.name,
            "version": version.version,
            "flavor": version.flavor,
            "run_id": version.run_id,
            "files": [f.digest for f in version.files],
        }
        self.ctx.audit(conn, "registry.register_version", urn, after=summary)
        outbox.emit(conn, urn, ModelVersionRegistered(**summary), self.ctx.actor.name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            return store.version_with_aliases(conn, _version_row(conn, name, version))

    def list_versions(self, name: str) -> list[ModelVersion]:
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            _model_row(conn, name)
            return store.list_versions(conn, name)

    def update_version(
        self,
        name: str,
        version: int,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        status: VersionStatus | None = None,
    ) -> ModelVersion:
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = check_text(description, "description", MAX_DESCRIPTION)
        if tags is not None:
            values["tags"] = check_tags(tags)
        if status is not None:
            values["status"] = _check_status(status).value
        with self.ctx.db.begin() as conn:
            self.ctx.authorize("registry.write", _model_row(conn, name)["domain"])
            row = _version_row(conn, name, version)
            current = store.version_with_aliases(conn, row)
            if values.get("status") == VersionStatus.ARCHIVED and current.aliases:
                raise Conflict(
                    f"{current.uri} is the target of alias(es) {', '.join(current.aliases)}",
                    {"field": "status", "fix": "move or delete those aliases before archiving"},
                )
            if values:
                store.update_version(conn, name, version, values)
                self.ctx.audit(
                    conn,
                    "registry.update_version",
                    current.urn,
                    before=_jsonable(row, values),
                    after=values,
                )
            return store.version_with_aliases(conn, _version_row(conn, name, version))

    def set_model_card(self, name: str, version: int, markdown: str) -> None:
        check_text(markdown, "model_card", MAX_MODEL_CARD)
        with self.ctx.db.begin() as conn:
            self.ctx.authorize("registry.write", _model_row(conn, name)["domain"])
            row = _version_row(conn, name, version)
            store.update_version(conn, name, version, {"model_card": markdown})
            self.ctx.audit(
                conn,
                "registry.set_model_card",
                model_version_urn(name, version),
                before=row["model_card"],
                after=markdown,
            )

    def get_model_card(self, name: str, version: int) -> str:
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            return str(_version_row(conn, name, version)["model_card"])

    def resolve(self, uri: str) -> ModelVersion:
        ref = parse_model_uri(uri)
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            return _resolve(conn, ref)

    def read_file(self, name: str, version: int, path: str) -> bytes:
        """A file of a version the caller may read (the download is audited)."""
        found_version = self.get_version(name, version)
        found = self._find_file(found_version, path)
        data = self.ctx.blobs.get_bytes(found.digest)
        with self.ctx.db.begin() as conn:
            detail = {"path": path, "digest": found.digest, "bytes": len(data)}
            self.ctx.audit(conn, "registry.read_file", found_version.urn, detail=detail)
        return data

    def load_model(
        self, uri: str, trust: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        from meshops.registry.loaded import load_directory, target_path

        version = self.resolve(uri)
        trusted_types = [*trusted_skops_types(self.ctx.home.settings), *(trusted_types or [])]
        with tempfile.TemporaryDirectory(prefix="meshops-load-") as tmp:
            for file in version.files:
                target = target_path(Path(tmp), file.path)
                with self.ctx.blobs.local_path(file.digest) as source:
                    shutil.copyfile(source, target)
            return load_directory(version, Path(tmp), trust, trusted_types, self._importable())

    # --- champion/challenger comparisons -----------------------------------------

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
        # Loads both models in this process: refused in the API server like trusted loads.
        from meshops.registry.evaluation import compare_versions

        return compare_versions(
            self,
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

    def record_comparison(
        self, name: str, version: int, scores: ComparisonScores
    ) -> ModelComparison:
        from meshops.tracking.models import DatasetInput, Metric

        check_alias(scores.alias)
        check_version(version)
        with self.ctx.db.read() as conn:
            model = store.load_model(conn, _model_row(conn, name))
            challenger = store.version_with_aliases(conn, _version_row(conn, name, version))
            holder = store.get_alias(conn, name, scores.alias)
        self.ctx.authorize("registry.write", model.domain)
        if holder == version:
            raise InvalidInput(
                f"{name} v{version} already holds {scores.alias!r}",
                {"field": "version", "fix": "compare a newer version with the holder"},
            )
        if scores.champion_version != holder:
            raise Conflict(
                f"the scores compare v{version} with v{scores.champion_version} but "
                f"{name}@{scores.alias} is "
                + (f"v{holder}" if holder is not None else "not set")
                + " now",
                {
                    "field": "champion_version",
                    "current": holder,
                    "fix": f"run platform.registry.compare({name!r}, {version}, "
                    f"alias={scores.alias!r}, data=..., label=...) again",
                },
            )
        metric = self._primary_metric(challenger, model.tags, scores)
        direction = direction_of(metric)
        challenger_score = scores.challenger_metrics.get(metric, scores.challenger_score)
        champion_score = scores.champion_metrics.get(metric, scores.champion_score)
        if holder is not None and champion_score is None:
            raise InvalidInput(
                f"the scores have no {metric!r} of the holder v{holder}",
                {"field": "champion_metrics", "fix": "score both models with compare()"},
            )
        tolerance = promotion_tolerance(self.ctx.home.settings)
        reasons: list[str] = []
        if holder is not None and champion_score is not None:
            gap = worse_by(metric, challenger_score, champion_score)
            if gap > tolerance:
                reasons.append(
                    f"{metric} {challenger_score:.6g} of v{version} is worse than "
                    f"{champion_score:.6g} of the current {scores.alias} v{holder} by "
                    f"{gap:.6g} ({'higher' if direction == 'max' else 'lower'} is better, "
                    f"tolerance {tolerance:g}) on the same {scores.evaluated_rows} rows"
                )
        data_urn = _evaluation_urn(scores)
        tracking = self._tracking()
        run = tracking.create_run(
            experiment=f"{name}-comparisons",
            name=f"v{version} vs {scores.alias}"
            + (f" v{holder}" if holder is not None else " (none)"),
            tags={
                "meshops.comparison.model": name,
                "meshops.comparison.challenger": str(version),
                "meshops.comparison.champion": str(holder or ""),
                "meshops.comparison.alias": scores.alias,
            },
            capture_environment=False,
        )
        try:
            tracking.log_params(
                run.id,
                {
                    "model": name,
                    "challenger_version": version,
                    "alias": scores.alias,
                    "champion_version": holder,
                    "metric": metric,
                    "direction": direction,
                    "tolerance": tolerance,
                    "task": scores.task,
                    "label": scores.label,
                    "data_digest": scores.data_digest,
                },
            )
            values = {f"challenger_{k}": v for k, v in scores.challenger_metrics.items()} | {
                f"champion_{k}": v for k, v in scores.champion_metrics.items()
            }
            values |= {
                f"challenger_{metric}": challenger_score,
                "evaluated_rows": float(scores.evaluated_rows),
                "holdout_rows": float(scores.holdout_rows),
                "feedback_rows": float(scores.feedback_rows),
            }
            if champion_score is not None:
                values[f"champion_{metric}"] = champion_score
            now = utcnow().timestamp()
            tracking.log_metrics(
                run.id, [Metric(key=k, value=v, step=0, timestamp=now) for k, v in values.items()]
            )
            tracking.log_input(
                run.id,
                DatasetInput(
                    urn=data_urn, digest=scores.data_digest, name="evaluation", context="evaluation"
                ),
            )
            tracking.end_run(run.id, "FINISHED")
        except BaseException:
            tracking.end_run(run.id, "FAILED", error="recording the comparison failed")
            raise
        detail = {
            "challenger_metrics": scores.challenger_metrics,
            "champion_metrics": scores.champion_metrics,
            "task": scores.task,
            "label": scores.label,
            "evaluated_rows": scores.evaluated_rows,
            "holdout_rows": scores.holdout_rows,
            "feedback_rows": scores.feedback_rows,
        }
        row = {
            "model_name": name,
            "challenger_version": version,
            "alias": scores.alias,
            "champion_version": holder,
            "metric": metric,
            "direction": direction,
            "challenger_score": challenger_score,
            "champion_score": champion_score,
            "tolerance": tolerance,
            "allowed": not reasons,
            "reasons": reasons,
            "detail": detail,
            "run_id": run.id,
            "data_digest": scores.data_digest,
            "data_urn": data_urn,
            "recorded_by": self.ctx.actor.name,
            "recorded_at": utcnow(),
        }
        with self.ctx.db.begin() as conn:
            # The holder may have moved while the run was written: then this is stale.
            if store.get_alias(conn, name, scores.alias) != holder:
                raise Conflict(
                    f"{name}@{scores.alias} moved while the comparison was recorded",
                    {"fix": "run compare() again"},
                )
            row_id = store.insert_comparison(conn, row)
            edges = [(challenger.urn, run_urn(run.id), "evaluated_in")]
            if holder is not None:
                edges.append((model_version_urn(name, holder), run_urn(run.id), "evaluated_in"))
            lineage.add_edges(conn, edges)
            self.ctx.audit(
                conn,
                "registry.record_comparison",
                challenger.urn,
                detail={k: v for k, v in row.items() if k not in ("detail", "recorded_at")},
            )
            return store.to_comparison({**row, "id": row_id})

    def feedback_window(self, name: str, days: int = 30) -> pa.Table:
        import pyarrow as pa

        if not 1 <= days <= MAX_FEEDBACK_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_FEEDBACK_DAYS}", {"field": "days"})
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            _model_row(conn, name)
        since = utcnow() - timedelta(days=days)
        window = FEEDBACK_WINDOWS.get().labelled(self.ctx, name, since)
        return window if window is not None else pa.table({})

    def list_comparisons(
        self, name: str, version: int | None = None, limit: int = 100
    ) -> list[ModelComparison]:
        if version is not None:
            check_version(version)
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", {"field": "limit"})
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            _model_row(conn, name)
            return store.comparisons(conn, name, version=version, limit=limit)

    def comparison_for_move(
        self, name: str, version: int, alias: str, holder: int
    ) -> ModelComparison | None:
        """The newest comparison that may justify moving `alias` from `holder` to
        `version`: recorded for exactly these two versions, after `holder` got the alias
        (what the promotion gate reads; server state only)."""
        with self.ctx.db.read() as conn:
            since = store.alias_updated_at(conn, name, alias)
            for found in store.comparisons(conn, name, version=version, alias=alias, limit=50):
                if found.champion_version != holder:
                    continue
                if since is not None and found.recorded_at < since:
                    continue
                return found
        return None

    def _primary_metric(
        self, version: ModelVersion, model_tags: dict[str, str], scores: ComparisonScores
    ) -> str:
        """The home's `[promotion] metric`, else the version's or the model's tag
        `meshops.metric`, else what the caller measured by."""
        configured = self.ctx.home.settings.section("promotion").get("metric")
        for declared in (configured, version.tags.get(METRIC_TAG), model_tags.get(METRIC_TAG)):
            if declared and str(declared) in METRICS:
                metric = str(declared)
                if metric not in scores.challenger_metrics and metric != scores.metric:
                    raise InvalidInput(
                        f"the declared primary metric {metric!r} was not measured",
                        {
                            "field": "scores.challenger_metrics",
                            "measured": sorted(scores.challenger_metrics),
                            "fix": f"compare with metric={metric!r} on data where both "
                            "models produce it",
                        },
                    )
                return metric
        return scores.metric

    # --- aliases ------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> AliasMove:
        check_alias(alias)
        check_version(version)
        check_text(reason, "reason", MAX_DESCRIPTION)
        with self.ctx.db.read() as conn:
            domain = _model_row(conn, name)["domain"]
            target = store.version_with_aliases(conn, _version_row(conn, name, version))
            current = store.get_alias(conn, name, alias)
        self.ctx.authorize("registry.alias", domain)
        if target.status == VersionStatus.ARCHIVED:
            raise Conflict(
                f"{target.uri} is archived",
                {"field": "version", "fix": "set its status back to READY or pick another"},
            )
        # The promotion gate (governance `model.promote` policies) decides before anything
        # is written; it raises PolicyViolation to refuse.
        self.gate.check(self.ctx, target, alias, current)
        with self.ctx.db.begin() as conn:
            current = store.get_alias(conn, name, alias)
            if current == version:
                history = store.alias_history(conn, name, alias, 1)
                if history:
                    return history[0]
            now = utcnow()
            store.put_alias(
                conn,
                name,
                alias,
                version,
                actor=self.ctx.actor.name,
                at=now,
                exists=current is not None,
            )
            return self._record_move(
                conn, name, alias, from_version=current, to_version=version, reason=reason, at=now
            )

    def delete_alias(self, name: str, alias: str, reason: str = "") -> AliasMove:
        check_alias(alias)
        with self.ctx.db.begin() as conn:
            self.ctx.authorize("registry.alias", _model_row(conn, name)["domain"])
            current = store.get_alias(conn, name, alias)
            if current is None:
                raise NotFound(
                    f"model {name!r} has no alias {alias!r}",
                    {"field": "alias", "fix": "see `meshops models show` for its aliases"},
                )
            store.delete_alias(conn, name, alias)
            return self._record_move(
                conn, name, alias, from_version=current, to_version=None, reason=reason, at=utcnow()
            )

    def _record_move(
        self,
        conn: Connection,
        name: str,
        alias: str,
        *,
        from_version: int | None,
        to_version: int | None,
        reason: str,
        at: Any,
    ) -> AliasMove:
        values = {
            "model_name": name,
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "actor": self.ctx.actor.name,
            "at": at,
            "reason": reason,
        }
        move_id = store.record_move(conn, values)
        payload = {
            "name": name,
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "reason": reason,
        }
        subject = model_version_urn(name, to_version) if to_version else _model_urn(name)
        self.ctx.audit(
            conn,
            "registry.set_alias" if to_version else "registry.delete_alias",
            subject,
            before={"alias": alias, "version": from_version},
            after={"alias": alias, "version": to_version},
            detail={"reason": reason} if reason else None,
        )
        outbox.emit(conn, subject, ModelAliasMoved(**payload), self.ctx.actor.name)
        return AliasMove(
            id=move_id,
            name=name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=self.ctx.actor.name,
            at=at,
            reason=reason,
        )

    def alias_history(
        self, name: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        if alias is not None:
            check_alias(alias)
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", {"field": "limit"})
        self.ctx.authorize("registry.read")
        with self.ctx.db.read() as conn:
            _model_row(conn, name)
            return store.alias_history(conn, name, alias, limit)

    # --- helpers ------------------------------------------------------------------

    def _tracking(self) -> Tracking:
        from meshops.tracking.service import TrackingService

        return TrackingService(self.ctx)

    def _domain_of(self, name: str) -> str | None:
        with self.ctx.db.read() as conn:
            row = store.get_model_row(conn, name)
        return None if row is None else row["domain"]

    def _new_model_values(
        self,
        name: str,
        description: str,
        tags: dict[str, str] | None,
        *,
        owner: str | None,
        domain: str | None,
        now: Any = None,
    ) -> dict[str, Any]:
        now = now or utcnow()
        return {
            "name": name,
            "description": check_text(description, "description", MAX_DESCRIPTION),
            "tags": check_tags(tags),
            "owner": owner,
            "domain": domain,
            "created_by": self.ctx.actor.name,
            "created_at": now,
            "updated_at": now,
        }

    def _check_files(self, files: list[ModelFile]) -> None:
        if not files or len(files) > MAX_FILES:
            raise InvalidInput(
                f"a model version needs between 1 and {MAX_FILES} files, got {len(files)}",
                {"field": "files"},
            )
        seen: set[str] = set()
        for file in files:
            check_relative(file.path)
            if file.path in seen:
                raise InvalidInput(f"file {file.path!r} is listed twice", {"field": "files"})
            seen.add(file.path)
            if not self.ctx.blobs.exists(file.digest):
                raise InvalidInput(
                    f"file {file.path!r}: blob {file.digest} is not in the blob store",
                    {"field": "files", "fix": "upload the bytes with upload_file first"},
                )

    def _importable(self) -> list[str] | None:
        """In the API server, the modules a torch recipe may import: those an admin lists
        in `[registry] torch_modules` (importing runs module code); elsewhere, any."""
        if not is_api_server(self.ctx.home):
            return None
        listed = self.ctx.home.settings.section("registry").get("torch_modules", [])
        return [str(m) for m in listed] if isinstance(listed, list) else []

    def _check_references(
        self, files: list[ModelFile], produced_here: set[str], run_id: str | None
    ) -> None:
        """Refuse a file whose blob the caller neither uploaded nor may already read."""
        digests = sorted({f.digest for f in files} - produced_here)
        if not digests:
            return
        with self.ctx.db.read() as conn:
            allowed = store.referable(conn, digests, self.ctx.actor.name)
        missing = [d for d in digests if d not in allowed]
        if missing and run_id is not None:
            # Artifacts of the named run: tracking checks the caller may read that run.
            allowed |= {a.digest for a in self._tracking().list_artifacts(run_id)}
            missing = [d for d in missing if d not in allowed]
        if missing:
            paths = [f.path for f in files if f.digest in set(missing)]
            raise InvalidInput(
                f"files {paths} name blobs you did not upload and may not read",
                {
                    "field": "files",
                    "files": paths,
                    "fix": "upload the bytes with upload_file (POST /v1/models/-/files) in "
                    "this session, or create the version from your run's artifacts",
                },
            )

    def _validate_files(self, flavor: Any, files: list[ModelFile]) -> None:
        """Load the files the way serving will, without running code from them."""
        from meshops.registry.loaded import target_path

        options = {"trusted_types": trusted_skops_types(self.ctx.home.settings)}
        with tempfile.TemporaryDirectory(prefix="meshops-validate-") as tmp:
            for file in files:
                with self.ctx.blobs.local_path(file.digest) as source:
                    shutil.copyfile(source, target_path(Path(tmp), file.path))
            try:
                flavor.validate(Path(tmp), options)
            except MeshopsError:
                raise
            except Exception as exc:  # a missing file, an unreadable archive ...
                raise InvalidInput(
                    f"the files are not a loadable {flavor.name} model: "
                    f"{type(exc).__name__}: {exc}",
                    {
                        "field": "files",
                        "files": [f.path for f in files],
                        "fix": f"register the files the {flavor.name} flavor writes",
                    },
                ) from exc

    @staticmethod
    def _find_file(version: ModelVersion, path: str) -> ModelFile:
        for file in version.files:
            if file.path == path:
                return file
        raise NotFound(
            f"{version.uri} has no file {path!r}",
            {"field": "path", "files": [f.path for f in version.files]},
        )


def _evaluation_urn(scores: ComparisonScores) -> str:
    if scores.data_urn:
        Urn.parse(scores.data_urn)
        return scores.data_urn
    return str(Urn.of("dataset", "evaluation", scores.data_digest[:16]))


def _model_urn(name: str) -> str:
    # A model as a whole is named by its version-less URN, e.g. meshops:model:churn.
    return f"meshops:model:{name}"


def _model_row(conn: Connection, name: str) -> Any:
    row = store.get_model_row(conn, name)
    if row is None:
        raise NotFound(
            f"model {name!r} not found",
            {"field": "name", "fix": "list models with `meshops models list`"},
        )
    return row


def _version_row(conn: Connection, name: str, version: int) -> Any:
    check_version(version)
    _model_row(conn, name)
    row = store.get_version_row(conn, name, version)
    if row is None:
        latest = store.next_version(conn, name) - 1
        raise NotFound(
            f"model {name!r} has no version {version}",
            {"field": "version", "latest": latest or None},
        )
    return row


def _resolve(conn: Connection, ref: ModelRef) -> ModelVersion:
    _model_row(conn, ref.name)
    if ref.alias is not None:
        version = store.get_alias(conn, ref.name, ref.alias)
        if version is None:
            raise NotFound(
                f"model {ref.name!r} has no alias {ref.alias!r}",
                {
                    "field": "uri",
                    "fix": f"set it with `meshops models alias set {ref.name} "
                    f"{ref.alias} <version>`",
                },
            )
    elif ref.latest:
        version = store.next_version(conn, ref.name) - 1
        if version < 1:
            raise NotFound(f"model {ref.name!r} has no versions yet", {"field": "uri"})
    else:
        assert ref.version is not None
        version = ref.version
    return store.version_with_aliases(conn, _version_row(conn, ref.name, version))


def _check_status(status: Any) -> VersionStatus:
    try:
        return VersionStatus(status)
    except ValueError:
        raise InvalidInput(
            f"unknown status {status!r}",
            {"field": "status", "known": [s.value for s in VersionStatus]},
        ) from None


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    # JSON (and PostgreSQL's JSONB) has no NaN/inf; a run's diverged metric is left out.
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def _relative_to(path: str, prefix: str) -> str | None:
    if not prefix:
        return path
    if path == prefix:
        return PurePosixPath(path).name
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1 :]
    return None


def _walk(root: Path) -> list[tuple[str, Path, int]]:
    return [
        (path.relative_to(root).as_posix(), path, path.stat().st_size)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


def _jsonable(row: Any, keys: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in keys if k in row and k != "updated_at"}
