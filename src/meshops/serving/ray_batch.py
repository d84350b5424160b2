"""Batch scoring on Ray Data (`engine="ray"`): the input table (read through the governed
path in this process) is split into blocks, and a pool of Ray actors scores them in
parallel, each actor loading the model once from the version's files (with the same trust
and skops checks as a local load). Predictions come back to this process and are assembled
exactly as a single-process scoring assembles them, so the published version is the same.

A block whose scoring raises is retried `block_retries` times in its actor; each retried
failure is logged (logger `meshops.serving`); a block that still fails fails the job and
nothing is published.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshops.kernel.codetrust import is_api_server
from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.mesh import ray_builds
from meshops.serving.models import jsonable

if TYPE_CHECKING:
    from meshops.kernel.home import Context
    from meshops.registry.loaded import LoadedModel
    from meshops.registry.models import ModelVersion

log = logging.getLogger("meshops.serving")
OFFSET = "__meshops_offset"
ENCODED = "__meshops_json"  # the block's predictions are JSON texts (not all scalars)


@dataclass(frozen=True)
class RayScoring:
    """How a batch scoring runs on Ray (bounded by the service's parameters)."""

    address: str | None = None
    block_rows: int | None = None
    workers: int | None = None  # actors in the pool (default: the cluster's CPUs, at most 8)
    block_retries: int = 2


@dataclass(frozen=True)
class ModelPackage:
    """A model version's files and the load options: what each actor loads the model from."""

    version: ModelVersion
    files: dict[str, bytes]
    trust: bool
    trusted_types: list[str]
    importable: list[str] | None


def ray_options(
    ctx: Context, address: str | None, block_rows: int | None, workers: int | None
) -> RayScoring:
    """In the API server the cluster is the admin's (`[serving] ray_address`): a caller
    does not point the server at an address of their choosing."""
    for name, value, most in (("block_rows", block_rows, 10_000_000), ("workers", workers, 256)):
        if value is not None and not 1 <= value <= most:
            raise InvalidInput(
                f"{name} must be between 1 and {most:,}, not {value}",
                {"field": name, "fix": f"give 1..{most:,}, or leave it out"},
            )
    if is_api_server(ctx.home):
        if address:
            raise Forbidden(
                "the API server scores on the Ray cluster its admin configured",
                {"field": "ray_address", "fix": "leave ray_address out"},
            )
        configured = ctx.home.settings.section("serving").get("ray_address")
        if not configured:
            raise Forbidden(
                "engine 'ray' is not set up on this server",
                {
                    "field": "engine",
                    "fix": "an admin sets [serving] ray_address in the server's meshops.toml, "
                    "or score with an embedded platform (meshops.connect(home=...))",
                },
            )
        address = str(configured)
    return RayScoring(address, block_rows, workers)


def model_package(ctx: Context, version: ModelVersion, trust: bool) -> ModelPackage:
    from meshops.registry.service import trusted_skops_types

    files = {}
    for file in version.files:
        with ctx.blobs.local_path(file.digest) as source:
            files[file.path] = Path(source).read_bytes()
    importable = None
    if is_api_server(ctx.home):  # as RegistryService.load_model: torch recipes' modules
        listed = ctx.home.settings.section("registry").get("torch_modules", [])
        importable = [str(m) for m in listed] if isinstance(listed, list) else []
    return ModelPackage(version, files, trust, trusted_skops_types(ctx.home.settings), importable)


class BlockScorer:
    """One actor of the pool: loads the model once, then scores the blocks it is given."""

    def __init__(self, package: ModelPackage, names: list[str], log: Any, retries: int) -> None:
        from meshops.registry.loaded import load_directory, target_path

        with tempfile.TemporaryDirectory(prefix="meshops-ray-model-") as tmp:
            for path, data in package.files.items():
                target_path(Path(tmp), path).write_bytes(data)
            self.model = load_directory(
                package.version, Path(tmp), package.trust, package.trusted_types, package.importable
            )
        self.names = names
        self.log = log
        self.retries = retries

    def __call__(self, batch: pa.Table) -> pa.Table:
        return ray_builds.with_retries(
            functools.partial(self.score, batch), batch, self.log, self.retries
        )

    def score(self, batch: pa.Table) -> pa.Table:
        offsets = batch.column(OFFSET)
        first = offsets[0].as_py() if batch.num_rows else 0
        out = jsonable(self.model.predict(batch.select(self.names).to_pandas(), first=first))
        values = out if isinstance(out, list) else [out] * batch.num_rows
        column, encoded = prediction_column(values)
        return pa.table(
            {
                OFFSET: offsets,
                "prediction": column,
                ENCODED: pa.array([encoded] * batch.num_rows, pa.bool_()),
            }
        )


def prediction_column(values: list[Any]) -> tuple[pa.Array, bool]:
    """As batch._prediction_array: scalars typed, anything else as JSON text (True)."""
    if all(isinstance(v, bool | int | float | str) for v in values):
        try:
            return pa.array(values), False
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array([json.dumps(v) for v in values], pa.string()), True


def predict_on_ray(
    model: LoadedModel,
    package: ModelPackage,
    table: pa.Table,
    names: list[str],
    options: RayScoring,
) -> list[Any] | pa.Array:
    """The predictions of every row of `table`, in its order: a typed column when every
    block gave the same type, else the Python values (for batch._prediction_array)."""
    with ray_builds.ray_session(options.address) as ray:
        source = table.select(names).append_column(
            OFFSET, pa.array(range(table.num_rows), pa.int64())
        )
        blocks = ray_builds.split(source, options.block_rows, None)
        workers = options.workers or max(1, min(8, int(ray.cluster_resources().get("CPU", 1))))
        block_log = ray_builds.new_block_log()
        scored = ray.data.from_arrow(blocks).map_batches(
            BlockScorer,
            fn_constructor_kwargs={
                "package": package,
                "names": names,
                "log": block_log,
                "retries": options.block_retries,
            },
            batch_format="pyarrow",
            batch_size=None,
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(blocks))),
        )
        run = ray_builds.collect(
            scored,
            block_log,
            what=f"batch scoring {model.uri} on ray",
            total_rows=table.num_rows,
            step=log.debug,
            field_name="engine",
        )
    for event in run.events:
        log.warning("%s", event)
    result = run.table.sort_by(OFFSET) if run.table.num_columns else None
    if result is None:
        return []
    encoded = result.column(ENCODED)
    predictions = result.column("prediction")
    if not any(encoded.to_pylist()):
        return predictions.combine_chunks()
    # Mixed blocks: the values themselves, so the column is built as in one process.
    flags = encoded.to_pylist()
    return [
        json.loads(v) if flag else v for v, flag in zip(predictions.to_pylist(), flags, strict=True)
    ]


def check_engine(engine: str) -> None:
    if engine not in ("local", "ray"):
        raise InvalidInput(
            f"unknown engine {engine!r}",
            {"field": "engine", "fix": "local (this process) or ray (Ray Data)"},
        )
