"""Schema diff between two versions of a product's output ports, and the semver rule.

Breaking (needs a major bump): port removed, column removed, column renamed, type changed,
type narrowed, nullable -> required, classification raised, primary key changed.
Additive (minor): port or column added, type widened, required -> nullable, classification
lowered, unique dropped or added. Anything else that differs (descriptions, tags): patch.
"""

from __future__ import annotations

from meshops.mesh.models import (
    ColumnSpec,
    SchemaChange,
    SchemaDiff,
    SemVer,
    classification_rank,
)

BREAKING_KINDS = (
    "port_removed",
    "column_removed",
    "column_renamed",
    "type_changed",
    "type_narrowed",
    "became_required",
    "classification_raised",
    "primary_key_changed",
)

# Widening chains: a move to the right is widening, to the left narrowing.
_LOGICAL_CHAIN = ("integer", "number")
_PHYSICAL_CHAINS = (
    ("tinyint", "smallint", "integer", "bigint", "hugeint"),
    ("float", "double"),
)


def _width_change(old: str, new: str, chains: tuple[tuple[str, ...], ...]) -> str | None:
    """'widened', 'narrowed', or None when the two are not on one chain."""
    for chain in chains:
        if old in chain and new in chain:
            return "widened" if chain.index(new) > chain.index(old) else "narrowed"
    return None


def _type_change(port: str, old: ColumnSpec, new: ColumnSpec) -> SchemaChange | None:
    from meshops.mesh.contracts import _physical

    if old.logical_type != new.logical_type:
        width = _width_change(old.logical_type, new.logical_type, (_LOGICAL_CHAIN,))
        kind = (
            "type_widened" if width == "widened" else ("type_narrowed" if width else "type_changed")
        )
        return SchemaChange(
            kind=kind,
            port=port,
            column=new.name,
            breaking=kind != "type_widened",
            message=f"{port}.{new.name}: logicalType {old.logical_type} -> {new.logical_type}",
        )
    if old.physical_type and new.physical_type:
        a, b = _physical(old.physical_type), _physical(new.physical_type)
        if a != b:
            width = _width_change(a, b, _PHYSICAL_CHAINS)
            kind = (
                "type_widened"
                if width == "widened"
                else ("type_narrowed" if width else "type_changed")
            )
            return SchemaChange(
                kind=kind,
                port=port,
                column=new.name,
                breaking=kind != "type_widened",
                message=(
                    f"{port}.{new.name}: physicalType {old.physical_type} -> {new.physical_type}"
                ),
            )
    return None


def _same_shape(a: ColumnSpec, b: ColumnSpec) -> bool:
    """Two columns that differ only by name (a rename candidate)."""
    return a.model_dump(exclude={"name", "description", "tags"}) == b.model_dump(
        exclude={"name", "description", "tags"}
    )


def diff_port(port: str, old: list[ColumnSpec], new: list[ColumnSpec]) -> list[SchemaChange]:
    changes: list[SchemaChange] = []
    old_by, new_by = {c.name: c for c in old}, {c.name: c for c in new}
    removed = [c for c in old if c.name not in new_by]
    added = [c for c in new if c.name not in old_by]
    for gone in removed:
        twin = next((c for c in added if _same_shape(gone, c)), None)
        if twin is not None:
            added.remove(twin)
            changes.append(
                SchemaChange(
                    kind="column_renamed",
                    port=port,
                    column=gone.name,
                    breaking=True,
                    message=f"{port}.{gone.name} renamed to {twin.name}",
                )
            )
        else:
            changes.append(
                SchemaChange(
                    kind="column_removed",
                    port=port,
                    column=gone.name,
                    breaking=True,
                    message=f"{port}.{gone.name} removed",
                )
            )
    for new_col in added:
        changes.append(
            SchemaChange(
                kind="column_added",
                port=port,
                column=new_col.name,
                breaking=False,
                message=f"{port}.{new_col.name} added",
            )
        )
    for name, before in old_by.items():
        after = new_by.get(name)
        if after is None:
            continue
        type_change = _type_change(port, before, after)
        if type_change:
            changes.append(type_change)
        if after.required and not before.required:
            changes.append(
                SchemaChange(
                    kind="became_required",
                    port=port,
                    column=name,
                    breaking=True,
                    message=f"{port}.{name}: nullable -> required",
                )
            )
        elif before.required and not after.required:
            changes.append(
                SchemaChange(
                    kind="became_nullable",
                    port=port,
                    column=name,
                    breaking=False,
                    message=f"{port}.{name}: required -> nullable",
                )
            )
        old_rank, new_rank = (
            classification_rank(before.classification),
            classification_rank(after.classification),
        )
        if new_rank > old_rank:
            changes.append(
                SchemaChange(
                    kind="classification_raised",
                    port=port,
                    column=name,
                    breaking=True,
                    message=f"{port}.{name}: classification {before.classification} -> "
                    f"{after.classification}",
                )
            )
        elif new_rank < old_rank:
            changes.append(
                SchemaChange(
                    kind="classification_lowered",
                    port=port,
                    column=name,
                    breaking=False,
                    message=f"{port}.{name}: classification {before.classification} -> "
                    f"{after.classification}",
                )
            )
        if before.unique != after.unique:
            changes.append(
                SchemaChange(
                    kind="unique_changed",
                    port=port,
                    column=name,
                    breaking=False,
                    message=f"{port}.{name}: unique {before.unique} -> {after.unique}",
                )
            )
        if (before.description, before.tags) != (after.description, after.tags):
            changes.append(
                SchemaChange(
                    kind="documentation_changed",
                    port=port,
                    column=name,
                    breaking=False,
                    message=f"{port}.{name}: description or tags changed",
                )
            )
    old_key = [c.name for c in old if c.primary_key]
    new_key = [c.name for c in new if c.primary_key]
    if old_key != new_key:
        changes.append(
            SchemaChange(
                kind="primary_key_changed",
                port=port,
                column=None,
                breaking=True,
                message=f"{port}: primary key {old_key} -> {new_key}",
            )
        )
    return changes


def diff_schemas(
    previous_version: str | None,
    new_version: str,
    old_ports: dict[str, list[ColumnSpec]],
    new_ports: dict[str, list[ColumnSpec]],
) -> SchemaDiff:
    changes: list[SchemaChange] = []
    for port, columns in old_ports.items():
        if port not in new_ports:
            changes.append(
                SchemaChange(
                    kind="port_removed",
                    port=port,
                    column=None,
                    breaking=True,
                    message=f"output port {port} removed",
                )
            )
        else:
            changes.extend(diff_port(port, columns, new_ports[port]))
    for port in new_ports:
        if port not in old_ports:
            changes.append(
                SchemaChange(
                    kind="port_added",
                    port=port,
                    column=None,
                    breaking=False,
                    message=f"output port {port} added",
                )
            )
    return SchemaDiff(
        previous_version=previous_version,
        new_version=new_version,
        changes=changes,
        required_bump=required_bump(changes) if previous_version else "none",
    )


def required_bump(changes: list[SchemaChange]) -> str:
    if any(c.breaking for c in changes):
        return "major"
    if any(c.kind != "documentation_changed" for c in changes):
        return "minor"
    return "patch" if changes else "none"


def bump_between(previous: str, new: str) -> str:
    """The kind of bump from `previous` to `new` ('major', 'minor', 'patch' or 'none').

    Under 1.0.0 a minor bump may break (semver item 4), so it counts as major there.
    """
    a, b = SemVer.parse(previous), SemVer.parse(new)
    if b.major > a.major or (a.major == 0 and b.major == 0 and b.minor > a.minor):
        return "major"
    if (b.major, b.minor) > (a.major, a.minor):
        return "minor"
    if b > a:
        return "patch"
    return "none"
