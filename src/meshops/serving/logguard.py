"""Enriched feature values in the prediction log are governed data.

An endpoint with feature enrichment logs the values its model saw, looked up (through the
read guard) for whoever called predict. Someone else reading the log back (the window,
a monitor, a roll into the log data product) must not see more than their own grant on
the features' source products allows. `withheld` asks the home's read guard, as the
reader, about each source product port the enrichment reads; every output the reader may
not see in clear (no grant, a masked or hidden column, a row-filtered grant) is withheld
from what it reads, and the read is recorded as usage (interface "serving").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa

from meshops.kernel.access import ReadRequest, ReadUsage
from meshops.kernel.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from meshops.kernel.home import Context
    from meshops.serving.models import FeatureEnrichment


def withheld(ctx: Context, spec: FeatureEnrichment, rows: int) -> set[str]:
    """Output names of the enrichment that `ctx.actor` may not read in clear."""
    from meshops.features.registry import resolve
    from meshops.features.service import FeatureStoreService

    features = FeatureStoreService(ctx)
    defs = features.definitions()
    plan = resolve(defs, spec.features)
    hidden: set[str] = set()
    for name, wanted in plan.views.items():
        outputs = {output for _, output in wanted}
        try:
            described = features.source.describe(defs.views[name].source)
            request = ReadRequest(
                product=described.product,
                domain=described.domain,
                version=described.version,
                port=described.port,
                columns=tuple(dict.fromkeys(f.source_column for f, _ in wanted)),
                classification={c.name: c.classification or "" for c in described.columns},
                owners=described.owners,
                interface="serving",
                purpose="prediction log",
            )
            decided = ctx.home.read_guard.plan(ctx, request)
        except (Forbidden, NotFound):
            hidden |= outputs
            continue
        if decided.row_filter:  # logged rows are per request, not rows it can filter
            hidden |= outputs
            continue
        clear = set(decided.columns) - set(decided.masks)
        hidden |= {output for feature, output in wanted if feature.source_column not in clear}
        ctx.home.read_guard.record(ctx, ReadUsage(request=request, plan=decided, rows=rows))
    if hidden:  # on-demand features are computed from the others: withheld with them
        hidden |= {odf.name for odf in plan.on_demand}
    return hidden


def withhold(raw: pa.Table, names: set[str]) -> pa.Table:
    """The raw log with `names` removed from each row's looked-up `features` (values the
    request itself sent stay: they are the caller's own)."""
    if not names or raw.num_rows == 0:
        return raw
    kept = [
        None if text is None else json.dumps(_without(json.loads(text), names))
        for text in raw.column("features").to_pylist()
    ]
    index = raw.schema.get_field_index("features")
    field = raw.schema.field("features")
    return raw.set_column(index, field, pa.array(kept, type=field.type))


def _without(values: object, names: set[str]) -> object:
    if not isinstance(values, dict):
        return values
    return {k: v for k, v in values.items() if k not in names}


def governed(ctx: Context, spec: FeatureEnrichment | None, raw: pa.Table) -> pa.Table:
    """`raw` as `ctx.actor` may read it."""
    if spec is None or raw.num_rows == 0:
        return raw
    return withhold(raw, withheld(ctx, spec, raw.num_rows))
