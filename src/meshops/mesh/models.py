"""Mesh types and pure logic: domains, product versions, ports, columns, semver.

No I/O here; the spec files are read in `specs.py`, tables live in `store.py`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import total_ordering
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, computed_field

from meshops.kernel.bounds import MAX_DAYS, Count
from meshops.kernel.errors import InvalidInput

ProductStatus = Literal["draft", "published", "deprecated", "retired"]
Classification = Literal["public", "internal", "confidential", "restricted"]
# Higher index = more sensitive; raising a column's classification is a breaking change.
CLASSIFICATION_ORDER: tuple[str, ...] = ("public", "internal", "confidential", "restricted")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def check_name(value: str, what: str, field: str) -> str:
    if not NAME_RE.match(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid name",
            {
                "field": field,
                "fix": "use lower-case letters, digits and _ (starting with a letter), "
                "e.g. 'orders' or 'customer_profiles'",
            },
        )
    return value


def classification_rank(value: str | None) -> int:
    """Rank of a classification; unknown labels rank as 'internal' (the usual default)."""
    if not value:
        return 0
    label = value.lower()
    return CLASSIFICATION_ORDER.index(label) if label in CLASSIFICATION_ORDER else 1


# --- semver ---

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


@total_ordering
class SemVer:
    """A semantic version (https://semver.org); pre-releases sort before their release."""

    __slots__ = ("major", "minor", "patch", "prerelease")

    def __init__(self, major: int, minor: int, patch: int, prerelease: str = "") -> None:
        self.major, self.minor, self.patch, self.prerelease = major, minor, patch, prerelease

    @classmethod
    def parse(cls, text: str, field: str = "version") -> SemVer:
        match = _SEMVER.match(text.strip())
        if not match:
            raise InvalidInput(
                f"{text!r} is not a semantic version",
                {"field": field, "fix": "use MAJOR.MINOR.PATCH, e.g. 1.0.0"},
            )
        return cls(int(match[1]), int(match[2]), int(match[3]), match[4] or "")

    def _key(self) -> tuple[int, int, int, int, tuple[Any, ...]]:
        pre = tuple(
            (0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease.split(".")
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SemVer) and self._key() == other._key()

    def __lt__(self, other: SemVer) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.prerelease}" if self.prerelease else base

    def __repr__(self) -> str:
        return f"SemVer({str(self)!r})"


_COMPARATOR = re.compile(
    r"^(\^|~|>=|<=|>|<|=)?\s*v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$"
)


def _bounds(op: str, parts: list[str | None]) -> list[tuple[str, SemVer]]:
    nums = [int(p) if p is not None and p not in "xX*" else None for p in parts]
    major, minor, patch = nums
    if major is None:
        return []
    lo = SemVer(major, minor or 0, patch or 0)
    if op == "^":
        if major > 0 or minor is None:
            hi = SemVer(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            hi = SemVer(0, minor + 1, 0)
        else:
            hi = SemVer(0, 0, (patch or 0) + 1)
        return [(">=", lo), ("<", hi)]
    if op == "~":
        hi = SemVer(major, minor + 1, 0) if minor is not None else SemVer(major + 1, 0, 0)
        return [(">=", lo), ("<", hi)]
    if op in ("", "=") and (minor is None or patch is None):
        hi = SemVer(major + 1, 0, 0) if minor is None else SemVer(major, minor + 1, 0)
        return [(">=", lo), ("<", hi)]
    return [(op or "=", lo)]


class VersionRange:
    """An npm-style range: `^1`, `~1.2`, `1.x`, `>=1.2.0 <2`, `1.4.2`, or `*` (any).

    Comparators separated by spaces or commas must all hold; `||` separates alternatives.
    """

    def __init__(self, text: str) -> None:
        self.text = text.strip() or "*"
        self.alternatives: list[list[tuple[str, SemVer]]] = []
        for alternative in self.text.split("||"):
            bounds: list[tuple[str, SemVer]] = []
            tokens = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative.replace(",", " "))
            for token in tokens.split():
                match = _COMPARATOR.match(token)
                if not match:
                    raise InvalidInput(
                        f"{text!r} is not a version range",
                        {"field": "version", "fix": "use e.g. ^1, ~1.2, >=1.0.0 <2, or 1.4.2"},
                    )
                bounds.extend(_bounds(match[1] or "", [match[2], match[3], match[4]]))
            self.alternatives.append(bounds)

    def __contains__(self, version: SemVer) -> bool:
        return any(all(_holds(version, op, b) for op, b in alt) for alt in self.alternatives)

    def best(self, versions: list[str]) -> str | None:
        """The highest of `versions` inside the range (pre-releases only if named exactly)."""
        parsed = sorted(((SemVer.parse(v), v) for v in versions), reverse=True)
        for semver, text in parsed:
            if semver.prerelease and text != self.text:
                continue
            if semver in self:
                return text
        return None


def _holds(version: SemVer, op: str, bound: SemVer) -> bool:
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    if op == "<":
        return version < bound
    return version == bound


def split_product_ref(ref: str) -> tuple[str, str, str | None]:
    """'sales.orders@^1' -> ('sales', 'orders', '^1')."""
    key, _, version = ref.partition("@")
    domain, dot, name = key.strip().partition(".")
    if not dot or not domain or not name:
        raise InvalidInput(
            f"{ref!r} does not name a data product",
            {
                "field": "product",
                "fix": "write <domain>.<name>, e.g. sales.orders or sales.orders@^1",
            },
        )
    return domain, name, (version.strip() or None)


# --- domain objects ---


class Domain(BaseModel):
    name: str
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    team: str = ""
    created_at: datetime | None = None
    urn: str = ""


class ColumnSpec(BaseModel):
    name: str
    logical_type: str = "string"
    physical_type: str | None = None
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    classification: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class ColumnProfile(BaseModel):
    name: str
    type: str
    nulls: int
    distinct: int
    min: Any = None
    max: Any = None
    histogram: list[dict[str, Any]] = Field(default_factory=list)


# The `observed` value of a rule meshops reports without judging it: a `custom` or `text`
# quality rule (not evaluated), or a declaration meshops has no data for or cannot compare,
# such as an SLA on availability or a vendor physicalType it does not know (not checked).
# Such a result never fails a contract test (`passed` is true, `status` tells them apart).
NOT_EVALUATED = "not evaluated"
NOT_CHECKED = "not checked"


class RuleResult(BaseModel):
    """The outcome of one contract rule (schema check, quality rule or SLA)."""

    rule: str  # stable id, e.g. "schema.orders.amount.type" or "quality.orders.row_count"
    kind: str  # schema | quality | sla
    column: str | None = None
    passed: bool
    observed: Any = None
    expected: str = ""
    message: str = ""
    severity: str = "error"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        """passed | failed | not evaluated | not checked"""
        if self.passed and self.observed in (NOT_EVALUATED, NOT_CHECKED):
            return str(self.observed)
        return "passed" if self.passed else "failed"


class ContractReport(BaseModel):
    port: str
    rows: int
    results: list[RuleResult]
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed or r.severity != "error" for r in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.severity == "error"]


class OutputPortVersion(BaseModel):
    name: str
    contract_id: str
    columns: list[ColumnSpec]
    snapshot_digest: str
    row_count: int
    bytes: int = 0
    profile: list[ColumnProfile] = Field(default_factory=list)
    quality: list[RuleResult] = Field(default_factory=list)
    contract: dict[str, Any] = Field(default_factory=dict)  # the ODCS document as published

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


class PolicyWarning(BaseModel):
    """A `warn` policy that did not pass at a gate (the publish went ahead)."""

    policy_id: str
    explanation: str = ""


MAX_STORED_RETRIES = 100  # retried block failures listed in a version's build report
MAX_BUILD_PORTS = 1_000
_Text = Annotated[str, Field(max_length=2_000)]


class BlockRetry(BaseModel):
    """A block of a Ray build whose transform raised and was run again."""

    port: Annotated[str, Field(max_length=100)]
    block: Annotated[str, Field(max_length=200)]  # a digest of its first row, its row count
    attempt: Count
    error: _Text


class PortBlocks(BaseModel):
    """The blocks one output port of a Ray build was transformed in."""

    port: Annotated[str, Field(max_length=100)]
    blocks: Count  # transform calls that succeeded
    total_blocks: Count | None = None  # known when the input was split in the building process
    rows: Count  # input rows of those blocks
    total_rows: Count | None = None


class BuildSummary(BaseModel):
    """How a published version was built, stored with it (docs/ray.md): the engine, how
    long the build took and, on Ray, its blocks and the block failures that were retried.
    The client that builds sends it with the tables; it reports, it grants nothing."""

    engine: Literal["local", "ray"] = "local"
    seconds: Annotated[float, Field(ge=0, le=MAX_DAYS * 86_400)]
    ray_address: Annotated[str, Field(max_length=500)] | None = None  # None: a local Ray
    blocks: list[PortBlocks] = Field(default_factory=list, max_length=MAX_BUILD_PORTS)
    retries: list[BlockRetry] = Field(default_factory=list, max_length=MAX_STORED_RETRIES)
    retried_blocks: Count = 0  # all of them, when more failed than are listed


class DataProductVersion(BaseModel):
    product: str  # "<domain>.<name>"
    domain: str
    name: str
    version: str
    urn: str
    status: ProductStatus
    digest: str
    row_count: int
    created_at: datetime
    created_by: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    ports: list[OutputPortVersion]
    inputs: list[str] = Field(default_factory=list)  # URNs of input versions / sources
    descriptor: dict[str, Any] = Field(default_factory=dict)  # the ODPS document
    reused: bool = False  # True when publish found identical content already published
    # Warnings of the `dataproduct.publish` policies (severity warn) for this publish.
    policy_warnings: list[PolicyWarning] = Field(default_factory=list)
    # How it was built: a folder's build; publish_arrow stores it only when given.
    build: BuildSummary | None = None

    def port(self, name: str | None = None) -> OutputPortVersion:
        if name is None:
            return self.ports[0]
        for port in self.ports:
            if port.name == name:
                return port
        raise InvalidInput(
            f"{self.product} {self.version} has no output port {name!r}",
            {"field": "port", "fix": f"use one of {[p.name for p in self.ports]}"},
        )


class DataProduct(BaseModel):
    product: str
    domain: str
    name: str
    status: ProductStatus
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    latest_version: str | None = None
    sunset: date | None = None
    replacement: str | None = None
    deprecation_reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SchemaChange(BaseModel):
    kind: str  # column_removed | column_renamed | type_changed | type_narrowed | ...
    port: str
    column: str | None
    breaking: bool
    message: str


class SchemaDiff(BaseModel):
    previous_version: str | None
    new_version: str
    changes: list[SchemaChange] = Field(default_factory=list)
    required_bump: Literal["major", "minor", "patch", "none"] = "none"
    affected: list[str] = Field(default_factory=list)  # downstream URNs of a major bump

    @property
    def breaking(self) -> list[SchemaChange]:
        return [c for c in self.changes if c.breaking]


class SloPoint(BaseModel):
    version: str
    at: datetime
    fresh: bool
    quality_passed: int
    quality_total: int


class SloStatus(BaseModel):
    product: str
    freshness_ok: bool | None  # None when the contract declares no freshness
    freshness_limit_seconds: float | None = None
    age_seconds: float | None = None
    quality_compliance: float  # share of rules passed across published versions
    history: list[SloPoint] = Field(default_factory=list)


class SearchHit(BaseModel):
    product: str
    domain: str
    name: str
    status: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    owners: list[str] = Field(default_factory=list)
    latest_version: str | None = None
    score: float = 0.0


class SearchResult(BaseModel):
    query: str
    total: int
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = Field(default_factory=dict)
    # False when `total` is an estimate (SQLite, a large match set: see the module doc of
    # mesh/catalog_search.py), shown as "about N".
    total_exact: bool = True
    # True when the facet counts were computed over a sample of a large match set and
    # scaled to `total` (see mesh/catalog_search.py FACET_SAMPLE).
    facets_estimated: bool = False


class ValidationReport(BaseModel):
    product: str
    version: str
    ports: list[str]
    warnings: list[str] = Field(default_factory=list)


class PortBuild(BaseModel):
    port: str
    rows: int
    columns: list[str]
    report: ContractReport


class BuildReport(BaseModel):
    """A build and its contract test, without publishing (`meshops product build`)."""

    product: str
    version: str
    seconds: float
    inputs: list[str]
    ports: list[PortBuild]
    steps: list[str] = Field(default_factory=list)
    build: BuildSummary | None = None

    @property
    def passed(self) -> bool:
        return all(p.report.passed for p in self.ports)


class DeprecatedProductWarning(UserWarning):
    """Reading a deprecated data product: move to its replacement before the sunset date."""
