"""Where a feature view's data comes from: one data product output port, read only through
the mesh area's governed read path (grants, masking, usage recorded as `features`).

`FeatureSource` is the one seam between the feature store and the mesh: it describes the
product version a view would read (columns and types from its contract) and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from meshops.features.models import SourceRef
from meshops.kernel import ports

if TYPE_CHECKING:
    from meshops.kernel.home import Context


@dataclass(frozen=True)
class SourceColumn:
    name: str
    logical_type: str
    physical_type: str | None = None
    classification: str | None = None


@dataclass(frozen=True)
class SourceVersion:
    product: str
    domain: str
    version: str
    urn: str
    digest: str
    port: str
    rows: int
    columns: tuple[SourceColumn, ...]
    status: str = "published"
    owners: tuple[str, ...] = ()  # the product's owners (the read guard's facts)

    def column(self, name: str) -> SourceColumn | None:
        return next((c for c in self.columns if c.name == name), None)


class FeatureSource(Protocol):
    def describe(self, ref: SourceRef) -> SourceVersion:
        """The product version `ref` resolves to now, with its port's columns."""
        ...

    def read(self, ref: SourceRef, version: SourceVersion, columns: list[str]) -> pa.Table:
        """The named columns of exactly that version (through the governed read path)."""
        ...


class MeshFeatureSource:
    """Data products published in this home's mesh."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def describe(self, ref: SourceRef) -> SourceVersion:
        facts = ports.PRODUCT_FACTS.get().port_facts(
            self.ctx, ref.product, port=ref.port, version=ref.version
        )
        return SourceVersion(
            product=facts.product,
            domain=facts.domain,
            version=facts.version,
            urn=facts.urn,
            digest=facts.digest,
            port=facts.port,
            rows=facts.rows,
            columns=tuple(
                SourceColumn(
                    c.name, (c.logical_type or "").lower(), c.physical_type, c.classification
                )
                for c in facts.columns
            ),
            status=facts.status,
            owners=facts.owners,
        )

    def read(self, ref: SourceRef, version: SourceVersion, columns: list[str]) -> pa.Table:
        table: pa.Table = ports.GOVERNED_READS.get().read(
            self.ctx,
            version.product,
            version=version.version,
            port=version.port,
            columns=columns,
            interface="features",
        )
        return table
