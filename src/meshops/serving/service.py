"""Serving use cases over a home: endpoints, traffic, predictions, feedback, the prediction
log (windows for monitoring, rolls into data product versions) and batch scoring."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from meshops.kernel import lineage, openlineage, outbox
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.serving import store
from meshops.serving.events import EndpointChanged
from meshops.serving.logguard import governed
from meshops.serving.models import (
    Endpoint,
    FeatureEnrichment,
    FeedbackItem,
    Prediction,
    RolledLog,
    check_endpoint_name,
    check_percent,
    check_request_id,
    check_trusted,
    model_name_of,
    model_uri,
    proba_of,
    records_of,
)
from meshops.serving.runtime import existing_runtime, runtime_for

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.mesh.models import DataProductVersion

MAX_FEEDBACK = 100_000


class ServingService:
    """The embedded implementation of `meshops.serving.interface.Serving`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- endpoints ---------------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        model: str,
        *,
        domain: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
        shadows: list[str] | None = None,
        features: list[str] | str | None = None,
        entity_keys: list[str] | None = None,
        description: str = "",
        trust_model_code: bool = False,
    ) -> Endpoint:
        """`trust_model_code=True` lets the endpoint load pickled (python-flavor) models,
        which runs code from the model files: an explicit choice, audited on its own."""
        check_endpoint_name(name)
        primary = model_uri(model)
        domain = domain or self._model_domain(primary)
        self.ctx.authorize("serving.write", domain)
        routes = self._check_routes(
            primary, canary, canary_percent, shadows, trust=bool(trust_model_code)
        )
        now = utcnow()
        endpoint = Endpoint(
            name=name,
            domain=domain,
            model=primary,
            canary=routes[0],
            canary_percent=check_percent(canary_percent) if routes[0] else 0.0,
            shadows=routes[1],
            enrichment=_enrichment(features, entity_keys),
            trust_model_code=bool(trust_model_code),
            description=description,
            created_by=self.ctx.actor.name,
            created_at=now,
            updated_at=now,
        )
        with self.ctx.db.begin() as conn:
            if store.get_endpoint(conn, name) is not None:
                raise Conflict(
                    f"endpoint {name!r} exists",
                    {"field": "name", "fix": "change it with `meshops endpoints traffic`"},
                )
            store.insert_endpoint(conn, endpoint)
            self._deployment_edges(conn, endpoint)
            self.ctx.audit(
                conn,
                "serving.create_endpoint",
                endpoint.urn,
                after=endpoint.model_dump(mode="json"),
            )
            if endpoint.trust_model_code:
                self._audit_trust(conn, endpoint)
        return endpoint

    def get_endpoint(self, name: str) -> Endpoint:
        with self.ctx.db.read() as conn:
            endpoint = _endpoint(conn, name)
        self.ctx.authorize("serving.read", endpoint.domain)
        return endpoint

    def list_endpoints(self, domain: str | None = None) -> list[Endpoint]:
        self.ctx.authorize("serving.read", domain)
        with self.ctx.db.read() as conn:
            return store.list_endpoints(conn, domain)

    def set_traffic(
        self,
        name: str,
        *,
        model: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
        shadows: list[str] | None = None,
        trust_model_code: bool | None = None,
    ) -> Endpoint:
        """Replace the routes: primary `model` (unchanged if None), a `canary` taking
        `canary_percent` of requests (none if None), and `shadows` (none if None);
        `trust_model_code` unchanged if None."""
        current = self.get_endpoint(name)
        self.ctx.authorize("serving.write", current.domain)
        primary = model_uri(model) if model else current.model
        trust = current.trust_model_code if trust_model_code is None else bool(trust_model_code)
        routes = self._check_routes(primary, canary, canary_percent, shadows, trust=trust)
        with self.ctx.db.begin() as conn:
            before = _endpoint(conn, name)
            after = before.model_copy(
                update={
                    "model": primary,
                    "canary": routes[0],
                    "canary_percent": check_percent(canary_percent) if routes[0] else 0.0,
                    "shadows": routes[1],
                    "trust_model_code": trust,
                    "updated_at": utcnow(),
                    "generation": before.generation + 1,
                }
            )
            store.update_endpoint(conn, after)
            self._deployment_edges(conn, after)
            self.ctx.audit(
                conn,
                "serving.set_traffic",
                after.urn,
                before=before.model_dump(mode="json"),
                after=after.model_dump(mode="json"),
            )
            if after.trust_model_code != before.trust_model_code:
                self._audit_trust(conn, after)
            self._announce(conn, after, "traffic")
        return after

    def delete_endpoint(self, name: str) -> None:
        current = self.get_endpoint(name)
        self.ctx.authorize("serving.write", current.domain)
        with self.ctx.db.begin() as conn:
            store.delete_endpoint(conn, name)
            self.ctx.audit(
                conn, "serving.delete_endpoint", current.urn, before=current.model_dump(mode="json")
            )
            self._announce(conn, current, "deleted")
        runtime = existing_runtime(self.ctx.home)
        if runtime is not None:
            runtime.forget(name)

    def _announce(self, conn: Any, endpoint: Endpoint, change: str) -> None:
        """Running endpoints (in any process) notice changes through the outbox counter."""
        payload = {"name": endpoint.name, "change": change, "generation": endpoint.generation}
        outbox.emit(conn, endpoint.urn, EndpointChanged(**payload), self.ctx.actor.name)

    def _check_routes(
        self,
        primary: str,
        canary: str | None,
        percent: float,
        shadows: list[str] | None,
        *,
        trust: bool,
    ) -> tuple[str | None, list[str]]:
        from meshops.registry.service import RegistryService

        check_percent(percent)
        canary_uri = model_uri(canary) if canary else None
        shadow_uris = [model_uri(s) for s in shadows or []]
        registry = RegistryService(self.ctx)
        for uri in [primary, *([canary_uri] if canary_uri else []), *shadow_uris]:
            # NotFound names the missing model, version or alias.
            check_trusted(uri, registry.resolve(uri), trust)
        return canary_uri, shadow_uris

    def _audit_trust(self, conn: Any, endpoint: Endpoint) -> None:
        """Trusting model code gets its own audit event, so it can be found and reviewed."""
        routes = [
            endpoint.model,
            *([endpoint.canary] if endpoint.canary else []),
            *endpoint.shadows,
        ]
        self.ctx.audit(
            conn,
            "serving.trust_model_code",
            endpoint.urn,
            detail={"trust_model_code": endpoint.trust_model_code, "models": routes},
        )

    def _deployment_edges(self, conn: Any, endpoint: Endpoint) -> None:
        from meshops.registry.service import RegistryService

        registry = RegistryService(self.ctx)
        uris = [endpoint.model, *([endpoint.canary] if endpoint.canary else []), *endpoint.shadows]
        edges = [(registry.resolve(u).urn, endpoint.urn, "deployed_to") for u in uris]
        lineage.add_edges(conn, edges)

    def _model_domain(self, uri: str) -> str:
        from meshops.registry.service import RegistryService

        found = RegistryService(self.ctx).get_model(model_name_of(uri)).domain
        if not found:
            raise InvalidInput(
                "the endpoint needs a domain (its prediction log is that domain's product)",
                {"field": "domain", "fix": "pass domain=..., or set the model's domain"},
            )
        return found

    # --- predictions and feedback ------------------------------------------------------------

    def predict(
        self, name: str, records: Any, request_id: str | None = None, *, proba: bool = False
    ) -> Prediction:
        """Score `records` (a list of dicts, or any body `records_of` accepts) in-process;
        `proba` (or `"proba": true` in a body) adds class probabilities."""
        body = records if isinstance(records, dict) else {"records": records}
        wanted = proba or proba_of(body)
        return runtime_for(self.ctx.home).predict(
            self.ctx, name, records_of(body), request_id, proba=wanted
        )

    def feedback(self, name: str, request_id: str, label: Any, record: int = 0) -> int:
        return self.feedback_bulk(
            name, [FeedbackItem(request_id=request_id, label=label, record=record)]
        )

    def feedback_bulk(self, name: str, items: list[FeedbackItem] | list[dict[str, Any]]) -> int:
        """Ground-truth labels by request id (a later label for the same id replaces the
        earlier one). Returns how many were stored."""
        parsed = [_feedback_item(item, n) for n, item in enumerate(items)]
        if len(parsed) > MAX_FEEDBACK:
            raise InvalidInput(f"at most {MAX_FEEDBACK} labels per call", {"field": "items"})
        endpoint = self.get_endpoint(name)
        self.ctx.authorize("monitoring.feedback", endpoint.domain)
        for item in parsed:
            check_request_id(item.request_id)
        now = utcnow()
        rows = [
            {
                "endpoint": name,
                "request_id": item.request_id,
                "record": item.record,
                "label": {"value": item.label},
                "actor": self.ctx.actor.name,
                "at": now,
            }
            for item in parsed
        ]
        with self.ctx.db.begin() as conn:
            store.upsert_feedback(conn, rows)
            self.ctx.audit(conn, "serving.feedback", endpoint.urn, detail={"labels": len(rows)})
        return len(rows)

    def flush(self) -> None:
        """Write this process's buffered prediction log rows now."""
        runtime = existing_runtime(self.ctx.home)
        if runtime is not None:
            runtime.flush()

    # --- the prediction log ------------------------------------------------------------------

    def prediction_window(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        with_labels: bool = True,
        include_shadow: bool = False,
    ) -> pa.Table:
        """Predictions logged in [start, end) as one Arrow table: request_id, record, model,
        model_version, role, time, latency_ms, one column per input and feature, prediction
        and (with_labels) label — null until feedback arrives. What monitors read."""
        from meshops.serving.window import read_window

        endpoint = self.get_endpoint(name)
        self.flush()
        with self.ctx.db.read() as conn:
            chunks = store.chunks_in_window(conn, name, start, end)
        raw = read_window(self.ctx.blobs, chunks, start, end, include_shadow)
        # Looked-up feature values: only what this reader's own grants show in clear.
        raw = governed(self.ctx, endpoint.enrichment, raw)
        labels: dict[tuple[str, int], Any] | None = None
        if with_labels:
            ids = sorted(set(raw.column("request_id").to_pylist()))
            with self.ctx.db.read() as conn:
                found = store.feedback_for(conn, endpoint.name, ids)
            labels = {(r.request_id, int(r.record)): r.label["value"] for r in found}
        from meshops.serving.window import expand

        return expand(raw, labels)

    def roll_log(self, name: str) -> RolledLog:
        """Publish the log rows not yet in a version as the next version of the endpoint's
        prediction-log data product (owned by the endpoint's domain)."""
        from meshops.serving.window import log_contract, log_descriptor, read_chunks

        endpoint = self.get_endpoint(name)
        self.ctx.authorize("serving.write", endpoint.domain)
        self.flush()
        with self.ctx.db.read() as conn:
            chunks = store.unrolled_chunks(conn, name)
            previous = store.rolled_versions(conn, name)
        if not chunks:
            return RolledLog(
                endpoint=name, product=endpoint.log_product, version=None, rows=0, chunks=0
            )
        # The roller publishes only the looked-up values its own grants show in clear.
        table = governed(self.ctx, endpoint.enrichment, read_chunks(self.ctx.blobs, chunks))
        version = f"1.{previous}.0"
        published = self._mesh().publish_arrow(
            log_descriptor(endpoint, version),
            {"predictions": log_contract(endpoint.enrichment is not None)},
            {"predictions": table},
            inputs=[endpoint.urn],
        )
        with self.ctx.db.begin() as conn:
            store.mark_rolled(conn, [int(c.id) for c in chunks], published.version)
            self.ctx.audit(
                conn,
                "serving.roll_log",
                endpoint.urn,
                detail={"version": published.version, "rows": table.num_rows},
            )
        return RolledLog(
            endpoint=name,
            product=endpoint.log_product,
            version=published.version,
            rows=table.num_rows,
            chunks=len(chunks),
        )

    # --- batch scoring -----------------------------------------------------------------------

    def batch_score(
        self,
        model: str,
        product: str,
        version: str | None = None,
        *,
        output: str,
        output_version: str | None = None,
        port: str | None = None,
        keep_columns: list[str] | None = None,
        trust_model_code: bool = False,
        engine: str = "local",
        ray_address: str | None = None,
        block_rows: int | None = None,
        workers: int | None = None,
    ) -> DataProductVersion:
        """Score a data product version (read through the governed read path, interface
        "serving") with `model` and publish the predictions as a version of `output`
        (`domain.name`), with lineage from the model version and the input version.
        `trust_model_code=True` loads pickled (python-flavor) models (audited)."""
        from meshops.serving import ray_batch
        from meshops.serving.batch import score_product

        ray_batch.check_engine(engine)
        ray = (
            ray_batch.ray_options(self.ctx, ray_address, block_rows, workers)
            if engine == "ray"
            else None
        )
        with openlineage.reporting(self.ctx, f"{output}.batch_score", job_type="SCORING") as ol:
            published: DataProductVersion = score_product(
                self.ctx,
                self._mesh(),
                model_uri(model),
                product,
                version,
                output=output,
                output_version=output_version,
                port=port,
                keep_columns=keep_columns,
                trust_model_code=bool(trust_model_code),
                ray=ray,
            )
            if ol is not None:  # OpenLineage configured: the scored port and the predictions
                source = self._mesh().get_version(product, version)
                openlineage.record_batch_scoring(self.ctx, ol, source, port, published)
        return published

    def _mesh(self) -> Any:
        from meshops.mesh.service import MeshService

        return MeshService(self.ctx)


def _endpoint(conn: Any, name: str) -> Endpoint:
    found = store.get_endpoint(conn, name)
    if found is None:
        raise NotFound(
            f"no endpoint {name!r}",
            {"field": "endpoint", "fix": "see `meshops endpoints list`"},
        )
    return found


def _enrichment(
    features: list[str] | str | None, entity_keys: list[str] | None
) -> FeatureEnrichment | None:
    if not features and not entity_keys:
        return None
    if not features or not entity_keys:
        raise InvalidInput(
            "feature enrichment needs both `features` and `entity_keys`",
            {"field": "features" if not features else "entity_keys"},
        )
    return FeatureEnrichment(features=features, entity_keys=list(entity_keys))


def _feedback_item(raw: object, index: int) -> FeedbackItem:
    if isinstance(raw, FeedbackItem):
        return raw
    if not isinstance(raw, dict) or "request_id" not in raw or "label" not in raw:
        raise InvalidInput(
            f"feedback item {index} needs request_id and label",
            {"record": index, "field": "request_id", "fix": '{"request_id": ..., "label": ...}'},
        )
    return FeedbackItem.model_validate(raw)
