"""`mlflow.log_input` of a meshops data product: which MLflow datasets name a meshops
object, and the meshops input (URN and digest) they stand for.

The convention (docs/mlflow.md): a dataset names a meshops data product when its `name`,
or its source's `url`/`uri`/`urn`, is

- `meshops://<domain>.<product>` (the product's current version) or
  `meshops://<domain>.<product>@<version>`, e.g.
  `mlflow.data.from_pandas(df, name="meshops://sales.orders@1.0.0")` or
  `source=HTTPDatasetSource("meshops://sales.orders")`;
- or a meshops URN, e.g. `meshops:dataproduct:sales.orders:1.0.0`.

A product is resolved through the mesh's read path (the caller must be allowed to read
it), so the run is linked in lineage to the product VERSION with that version's own
content digest, never to what the request claims. Other datasets (files, tables elsewhere)
are not meshops objects and stay out of meshops's lineage.
"""

from __future__ import annotations

import json
from typing import Any

from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.tracking.models import DatasetInput

SCHEME = "meshops://"
MAX_REF = 1_000


def references(dataset: dict[str, Any]) -> list[str]:
    """The texts of an MLflow dataset that may name a meshops object, in order."""
    found: list[str] = []
    name = dataset.get("name")
    if isinstance(name, str):
        found.append(name)
    source = dataset.get("source")
    if isinstance(source, str):
        found.append(source)
        try:
            decoded = json.loads(source)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            found += [str(decoded[k]) for k in ("urn", "uri", "url") if decoded.get(k)]
    return [f.strip() for f in found if f.strip().startswith((SCHEME, "meshops:"))]


def product_input(
    ctx: Context, dataset: dict[str, Any], tags: dict[str, str] | None = None
) -> DatasetInput | None:
    """The meshops input an MLflow dataset names (see the module), or None when it names
    none. A reference that looks like meshops's but does not resolve is an InvalidInput
    (or NotFound) naming it, never silently dropped."""
    refs = references(dataset)
    if not refs:
        return None
    ref = refs[0][:MAX_REF]
    context = str((tags or {}).get("mlflow.data.context") or "training")[:100]
    label = str(dataset.get("name") or "")[:256]
    if ref.startswith(SCHEME):
        product, _, version = ref[len(SCHEME) :].strip("/").partition("@")
        return _product(ctx, product, version or None, label=label, context=context, ref=ref)
    urn = Urn.parse(ref)
    if urn.kind == "dataproduct" and len(urn.parts) == 2:
        return _product(ctx, urn.parts[0], urn.parts[1], label=label, context=context, ref=ref)
    return DatasetInput(
        urn=str(urn), digest=str(dataset.get("digest") or "")[:128], name=label, context=context
    )


def _product(
    ctx: Context, product: str, version: str | None, *, label: str, context: str, ref: str
) -> DatasetInput:
    from meshops.mesh.service import MeshService

    if "." not in product:
        raise InvalidInput(
            f"{ref!r} does not name a data product",
            {
                "field": "dataset",
                "fix": "name it meshops://<domain>.<product>[@<version>], "
                "e.g. meshops://sales.orders@1.0.0",
            },
        )
    found = MeshService(ctx).get_version(product, version)
    return DatasetInput(urn=found.urn, digest=found.digest, name=label, context=context)
