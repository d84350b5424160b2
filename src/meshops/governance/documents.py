"""The documented input documents policies are evaluated over, one per target.

Each target's document is a pydantic model: gates in other areas build it (or pass the
equivalent dict, which is validated here), and policies see its top-level fields as CEL
variables (e.g. `product.owners`, `schema_diff.breaking`). Missing optional fields get their
defaults, so a policy never fails on an absent key. `SAMPLES` holds, per target, documents
every policy is type-checked against when it is saved.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from meshops.kernel.errors import InvalidInput

CLASSIFICATION_LEVELS = ("public", "internal", "confidential", "sensitive", "pii", "restricted")
# Levels masked on read unless a grant names the column (see guard.py and masking.py).
MASKED_LEVELS = frozenset({"confidential", "sensitive", "pii", "restricted"})


class Column(BaseModel):
    name: str
    type: str = "string"
    classification: str = "public"
    # How the port exposes the column to readers without a grant naming it:
    # "default" (the mask rule of its classification), "hash", "redact", "null", or "none"
    # (unmasked; the default policy pack forbids that for PII).
    masking: Literal["default", "hash", "redact", "null", "none"] = "default"


class Port(BaseModel):
    name: str
    columns: list[Column] = Field(default_factory=list)
    freshness: str = ""  # declared freshness SLO, e.g. "PT24H" or "24h"; "" = none declared


class Product(BaseModel):
    id: str  # "<domain>.<name>"
    domain: str
    name: str = ""
    version: str = ""
    previous_version: str = ""  # the last published version, "" for the first release
    status: str = "draft"
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class SchemaDiff(BaseModel):
    breaking: bool = False
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)


class TestResult(BaseModel):
    rule: str
    passed: bool
    status: str = ""  # passed | failed | not evaluated (custom/text rules) | not checked
    detail: str = ""


class TestResults(BaseModel):
    passed: int = 0
    failed: int = 0
    not_evaluated: int = 0  # custom and text quality rules, reported but not run
    not_checked: int = 0  # declarations without data to check (most SLA properties)
    results: list[TestResult] = Field(default_factory=list)


VersionBump = Literal["initial", "major", "minor", "patch", "none"]


def version_bump(previous: str, current: str) -> VersionBump:
    """Which semantic-version part changed from `previous` to `current`."""
    if not previous:
        return "initial"
    old, new = _semver(previous), _semver(current)
    if new[0] != old[0]:
        return "major"
    if new[1] != old[1]:
        return "minor"
    return "patch" if new[2] != old[2] else "none"


def _semver(text: str) -> tuple[int, int, int]:
    match = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not match:
        raise InvalidInput(
            f"not a semantic version: {text!r}", {"field": "version", "fix": "use e.g. 1.2.0"}
        )
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


class PublishInput(BaseModel):
    """`dataproduct.publish`: a version about to be published."""

    product: Product
    descriptor: dict[str, Any] = Field(default_factory=dict)  # the ODPS descriptor as given
    contract: dict[str, Any] = Field(default_factory=dict)  # the ODCS contract as given
    ports: list[Port] = Field(default_factory=list)
    schema_diff: SchemaDiff = Field(default_factory=SchemaDiff)
    version_bump: VersionBump | None = None  # derived from the versions when absent
    tests: TestResults = Field(default_factory=TestResults)

    @model_validator(mode="after")
    def _derive_bump(self) -> PublishInput:
        if self.version_bump is None:
            self.version_bump = version_bump(self.product.previous_version, self.product.version)
        return self


class AccessRequestDoc(BaseModel):
    id: str = ""
    product: str
    port: str
    requester: str
    purpose: str = ""
    columns: list[str] = Field(default_factory=list)  # classified columns asked unmasked
    row_filter: str = ""
    expires_in_days: int = 0  # 0 = no expiry asked


class PortFacts(BaseModel):
    product: str
    domain: str
    name: str
    owners: list[str] = Field(default_factory=list)
    classification: dict[str, str] = Field(default_factory=dict)  # column -> level
    classified_columns: list[str] = Field(default_factory=list)  # derived: masked levels

    @model_validator(mode="after")
    def _derive(self) -> PortFacts:
        self.classified_columns = sorted(
            c for c, level in self.classification.items() if level in MASKED_LEVELS
        )
        return self


class Consumer(BaseModel):
    name: str
    kind: str = "user"
    roles: list[str] = Field(default_factory=list)  # "role@scope" strings
    domains: list[str] = Field(default_factory=list)  # domains the consumer has a role in


class AccessGrantInput(BaseModel):
    """`access.grant` (may this request be granted?) and `access.auto_approve` (may it be
    granted without waiting for an owner?)."""

    request: AccessRequestDoc
    port: PortFacts
    consumer: Consumer


class FeatureDoc(BaseModel):
    name: str
    view: str = ""
    source_product: str = ""
    source_port: str = ""
    source_version: str = ""
    source_status: str = "published"
    classification: str = "public"


class ModelRef(BaseModel):
    name: str
    version: str = ""
    stage: str = ""
    domain: str = ""
    purpose: str = ""


class FeatureUseInput(BaseModel):
    """`feature.use`: features about to be used by a model (training or serving)."""

    features: list[FeatureDoc] = Field(default_factory=list)
    model: ModelRef
    consumer: Consumer | None = None


class LineageInput(BaseModel):
    urn: str
    kind: str = ""
    status: str = ""  # e.g. "published", "draft", "deprecated"


class Approval(BaseModel):
    by: str
    role: str = ""
    at: str = ""
    comment: str = ""


class ModelPromoteInput(BaseModel):
    """`model.promote`: a model version about to move to a stage (e.g. production)."""

    model: ModelRef
    target_stage: str
    metrics: dict[str, float] = Field(default_factory=dict)
    inputs: list[LineageInput] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)


TARGETS: dict[str, type[BaseModel]] = {
    "dataproduct.publish": PublishInput,
    "access.grant": AccessGrantInput,
    "access.auto_approve": AccessGrantInput,
    "feature.use": FeatureUseInput,
    "model.promote": ModelPromoteInput,
}


def check_target(target: str) -> type[BaseModel]:
    try:
        return TARGETS[target]
    except KeyError:
        raise InvalidInput(
            f"unknown policy target {target!r}",
            {"field": "target", "known": sorted(TARGETS), "fix": "use one of the known targets"},
        ) from None


def normalise(target: str, document: dict[str, Any]) -> dict[str, Any]:
    """Validate a document for `target` and fill defaults: what policies will see."""
    model = check_target(target)
    try:
        return model.model_validate(document).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"the {target} document is invalid at {where}: {first['msg']}",
            {"field": where, "target": target, "fix": "see docs/governance.md (input documents)"},
        ) from exc


def _publish_samples() -> list[dict[str, Any]]:
    good = PublishInput(
        product=Product(
            id="sales.orders",
            domain="sales",
            name="orders",
            version="2.0.0",
            previous_version="1.4.0",
            status="draft",
            description="Orders",
            owners=["alice"],
            tags=["core"],
        ),
        descriptor={"id": "sales.orders", "domain": "sales"},
        contract={"apiVersion": "v3.0.0", "kind": "DataContract"},
        ports=[
            Port(
                name="default",
                freshness="PT24H",
                columns=[
                    Column(name="order_id", type="integer"),
                    Column(name="email", classification="pii", masking="hash"),
                ],
            )
        ],
        schema_diff=SchemaDiff(breaking=True, removed=["note"], changed=["amount"]),
        tests=TestResults(passed=1, results=[TestResult(rule="not_null", passed=True)]),
    )
    bad = good.model_copy(deep=True)
    bad.product.owners, bad.product.description, bad.product.previous_version = [], "", ""
    bad.ports[0].freshness = ""
    bad.ports[0].columns[1].masking = "none"
    bad.schema_diff = SchemaDiff(added=["x"])
    bad.tests = TestResults(failed=1, results=[TestResult(rule="unique", passed=False)])
    return [good.model_dump(mode="json"), bad.model_dump(mode="json")]


def _access_samples() -> list[dict[str, Any]]:
    doc = AccessGrantInput(
        request=AccessRequestDoc(
            id="r1",
            product="sales.orders",
            port="default",
            requester="bob",
            purpose="churn model",
            columns=["email"],
            row_filter="region = 'EU'",
            expires_in_days=30,
        ),
        port=PortFacts(
            product="sales.orders",
            domain="sales",
            name="default",
            owners=["alice"],
            classification={"email": "pii", "order_id": "public"},
        ),
        consumer=Consumer(name="bob", roles=["data_scientist@platform"], domains=["sales"]),
    )
    other = doc.model_copy(deep=True)
    other.request.purpose, other.request.columns, other.request.expires_in_days = "", [], 0
    other.consumer = Consumer(name="carol")
    return [doc.model_dump(mode="json"), other.model_dump(mode="json")]


def _feature_samples() -> list[dict[str, Any]]:
    doc = FeatureUseInput(
        features=[
            FeatureDoc(
                name="spend_30d",
                view="customer_stats",
                source_product="sales.orders",
                source_port="default",
                source_version="1.0.0",
                classification="pii",
            )
        ],
        model=ModelRef(name="churn", version="3", stage="production", domain="sales"),
        consumer=Consumer(name="bob"),
    )
    other = FeatureUseInput(model=ModelRef(name="churn"))
    return [doc.model_dump(mode="json"), other.model_dump(mode="json")]


def _promote_samples() -> list[dict[str, Any]]:
    doc = ModelPromoteInput(
        model=ModelRef(name="churn", version="3", stage="staging", domain="sales"),
        target_stage="production",
        metrics={"accuracy": 0.91, "auc": 0.95},
        inputs=[LineageInput(urn="meshops:dataproduct:sales.orders:1.0.0", status="published")],
        approvals=[Approval(by="dora", role="business_stakeholder")],
    )
    other = ModelPromoteInput(
        model=ModelRef(name="churn", version="4"),
        target_stage="staging",
        inputs=[LineageInput(urn="meshops:dataproduct:sales.raw:0.1.0", status="draft")],
    )
    return [doc.model_dump(mode="json"), other.model_dump(mode="json")]


SAMPLES: dict[str, list[dict[str, Any]]] = {
    "dataproduct.publish": _publish_samples(),
    "access.grant": _access_samples(),
    "access.auto_approve": _access_samples(),
    "feature.use": _feature_samples(),
    "model.promote": _promote_samples(),
}
