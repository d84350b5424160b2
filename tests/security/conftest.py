"""The adversarial suite's shared world (issue #14 "No side door").

One governed home, served over real HTTP on a loopback port exactly as `meshops server`
serves it (`create_app(home, authenticate=authenticate_token)`, tokens required), built
ONCE per test session by the `sec` fixture, so every file of `tests/security/` can attack
the same organisation in milliseconds per test.

What the home holds (see `build_world` for the exact steps):

- domains `crm` (owner `crm-owner`) and `sales` (owner `sales-owner`, no grant on crm);
- `crm.customers` 1.0.0, port `customers`, published by the platform admin (`alice`, the
  home's local user) with product owner `crm-owner`, 8 rows of `CLEAR` data with columns
  `customer_id` (public), `region` (unclassified), `email` (pii -> hash), `note`
  (confidential -> redact), `income` (restricted -> null), `updated_at` (event time);
- principals (`PRINCIPALS`), each with a token in `sec.tokens`: the admin, the two domain
  owners, and for the roles consumer (implicit), data_scientist and ml_engineer one user per
  grant state: `none`, `masked` (a grant that names no classified column, so all three
  mask methods apply), `revoked` (granted, then revoked); plus `consumer-unmasked` (a grant
  naming every classified column) and `ds-filtered` (a data scientist whose grant names
  every classified column but has `ROW_FILTER`: the south rows are never its to read);
  and one principal of every other role without a grant (`gov-none`, `biz-none`,
  `arch-none`, `de-none`, `swe-none`, `devops-none`);
- feature view `customer_profile` over `crm.customers` (email, note, income, region),
  materialized online; an admin-made training set over it (`sec.training_set_id`);
- model `churn` (sklearn, version 1, alias `champion`) in domain `sales`, endpoint
  `churn-api` serving it, and endpoint `churn-enriched` serving it with records enriched
  from `customer_profile` by `customer_id`; the admin has scored every customer on it, so
  its prediction log holds what the admin was served.

Reuse (other files of this folder): request `sec` and use
- `sec.url`, `sec.token(name)`, `sec.headers(name)`, `sec.client(name)` (httpx, bearer);
- `sec.embedded(name)` / `sec.remote(name)`: a `Platform` acting as `name` (embedded on the
  served home, or over HTTP with its token); close it after use;
- `sec.cli(name, *args)`: run the `meshops` CLI as `name` against the server;
- `sec.ui(name)`: an httpx client signed in to the web UI (cookie session);
- `sec.admin()`: the admin's `GovernanceService`; `sec.reads(name)`: usage-event count of
  `name` on `crm.customers`; `sec.new_user(name, role, scope)`: a fresh principal and its
  token, for tests that change a principal's state (never mutate the `PRINCIPALS`);
- `leaks(body, needles)` with `CLEAR.masked_needles(rows=None)`, `CLEAR.allowed_needles()`
  and `CLEAR.filtered_out()`: which secret values occur in response bytes (raw, and inside
  Parquet / Arrow IPC bodies, which are decoded first);
- `BY_NAME[name]` (a `Principal`: role, scope, grant state, `reads`, `may(action)`);
- `customers_descriptor()`, `customers_contract()`, `entity_rows()`, `ipc_bytes(table)`,
  `scoring_record(customer_id)`, `hidden_fields(html)`.
Do not change the shared principals, grants, product, view or online store (publish your
own products, views and users): other tests rely on them, in any order.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings
from tests.support.products import data_contract, data_product

PRODUCT = "crm.customers"
PORT = "customers"
VIEW = "customer_profile"
MODEL = "churn"
ENDPOINT = "churn-api"
ENRICHED = "churn-enriched"  # the same model, its records enriched from customer_profile
ADMIN = "alice"
TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2024, 3, 1, tzinfo=UTC)
MASKED_COLUMNS = ("email", "note", "income")
FEATURES = [f"{VIEW}:{name}" for name in ("region", *MASKED_COLUMNS)]

Grant = Literal["admin", "owner", "none", "masked", "unmasked", "filtered", "revoked"]
Reads = Literal["clear", "masked", "filtered", "refused"]
# The row filter of the `filtered` grant: only the north rows (odd customer ids).
ROW_FILTER = "region = 'region-north-zone'"


@dataclass(frozen=True)
class Principal:
    """A user of the world: its role binding and its grant state on `crm.customers`."""

    name: str
    role: str  # "consumer" is the implicit role every principal has
    scope: str | None  # the role binding's domain (None: platform scope)
    grant: Grant

    @property
    def reads(self) -> Reads:
        """What the design lets it read of crm.customers through any data interface."""
        if self.grant in ("admin", "owner", "unmasked"):
            return "clear"
        if self.grant in ("masked", "filtered"):
            return self.grant
        return "refused"

    def may(self, action: str, domain: str | None = "crm") -> bool:
        """Whether its roles allow `action` in `domain` (None: at platform scope, which a
        domain-scoped binding does not give); the consumer role always holds."""
        from meshops.governance.roles import ROLES

        if ROLES["consumer"].allows(action):
            return True
        in_scope = self.scope is None or self.scope == domain
        return in_scope and ROLES[self.role].allows(action)


def _principals() -> list[Principal]:
    fixed = [
        Principal(ADMIN, "platform_admin", None, "admin"),
        Principal("crm-owner", "domain_owner", "crm", "owner"),
        Principal("sales-owner", "domain_owner", "sales", "none"),
        Principal("consumer-unmasked", "consumer", None, "unmasked"),
        Principal("ds-filtered", "data_scientist", None, "filtered"),
    ]
    states: list[Grant] = ["none", "masked", "revoked"]
    per_role = [
        Principal(f"{short}-{state}", role, None, state)
        for role, short in (
            ("consumer", "consumer"),
            ("data_scientist", "ds"),
            ("ml_engineer", "mle"),
        )
        for state in states
    ]
    # Every other role once, without a grant: whatever else it may do, it reads nothing.
    others = [
        Principal(f"{short}-none", role, None, "none")
        for role, short in (
            ("governance_member", "gov"),
            ("business_stakeholder", "biz"),
            ("solution_architect", "arch"),
            ("data_engineer", "de"),
            ("software_engineer", "swe"),
            ("devops_engineer", "devops"),
        )
    ]
    return fixed + per_role + others


PRINCIPALS: list[Principal] = _principals()
BY_NAME = {p.name: p for p in PRINCIPALS}


# --- the data and the secrets in it -----------------------------------------------------------


@dataclass(frozen=True)
class ClearData:
    """The published rows; the values of masked columns must never leave the server to a
    principal whose grant masks them, in any encoding."""

    rows: int = 8

    def emails(self) -> list[str]:
        return [f"secret{i:03d}@pii-mail.example" for i in range(self.rows)]

    def notes(self) -> list[str]:
        return [f"CONFIDENTIAL-NOTE-{i:03d}-xyzzy" for i in range(self.rows)]

    def incomes(self) -> list[float]:
        # Not evenly spaced: the mean of one region's incomes (which a filtered grant may see)
        # must not equal an income of the other region's rows.
        return [731_013.5 + 1_001.25 * i + 7.125 * i * i for i in range(self.rows)]

    def regions(self) -> list[str]:
        return [f"region-{'north' if i % 2 else 'south'}-zone" for i in range(self.rows)]

    def table(self) -> pa.Table:
        return pa.table(
            {
                "customer_id": pa.array(range(1, self.rows + 1), pa.int64()),
                "region": self.regions(),
                "email": self.emails(),
                "note": self.notes(),
                "income": pa.array(self.incomes(), pa.float64()),
                "updated_at": pa.array([T0 + timedelta(hours=i) for i in range(self.rows)], TS),
            }
        )

    def masked_needles(self, rows: range | list[int] | None = None) -> dict[str, bytes]:
        """label -> bytes: each clear value of a masked column (of `rows`, default all) as
        text and (income) as the little-endian double Arrow and Parquet store, plus the
        unkeyed SHA-256 of each email (finding 12: a guessable value set is read back
        through an unsalted hash)."""
        needles: dict[str, bytes] = {}
        emails, notes, incomes = self.emails(), self.notes(), self.incomes()
        for i in range(self.rows) if rows is None else rows:
            email, note, income = emails[i], notes[i], incomes[i]
            needles[f"email {email}"] = email.encode()
            needles[f"sha256(email) {email}"] = hashlib.sha256(email.encode()).hexdigest().encode()
            needles[f"note {note}"] = note.encode()
            needles[f"income {income!r}"] = repr(income).encode()
            needles[f"income {income!r} (binary)"] = struct.pack("<d", income)
        return needles

    def filtered_out(self) -> list[int]:
        """Row indexes the `ROW_FILTER` grant does not see (the south rows)."""
        return [i for i, region in enumerate(self.regions()) if "south" in region]

    def allowed_needles(self) -> dict[str, bytes]:
        """Values of unclassified columns: a masked grant still reads them."""
        return {f"region {r}": r.encode() for r in sorted(set(self.regions()))}


CLEAR = ClearData()


def _decoded(body: bytes) -> list[bytes]:
    """`body` plus the text of its rows when it is Parquet or an Arrow IPC stream (so values
    that compression hides are still found)."""
    texts = [body]
    try:
        if body[:4] == b"PAR1":
            import pyarrow.parquet as pq

            texts.append(repr(pq.read_table(io.BytesIO(body)).to_pylist()).encode())
        elif body[:4] == b"\xff\xff\xff\xff":
            with pa.ipc.open_stream(body) as reader:
                texts.append(repr(reader.read_all().to_pylist()).encode())
    except (pa.ArrowInvalid, OSError):
        pass
    return texts


def hidden_fields(html: str) -> dict[str, str]:
    """name -> value of the hidden inputs of a page's forms (CSRF tokens and the like)."""
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", html):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if attributes.get("type") == "hidden" and "name" in attributes:
            fields[attributes["name"]] = attributes.get("value", "")
    return fields


def leaks(body: bytes, needles: dict[str, bytes]) -> list[str]:
    """Labels of the needles found in `body` (raw or decoded)."""
    texts = _decoded(body)
    return [label for label, needle in needles.items() if any(needle in t for t in texts)]


# --- the world --------------------------------------------------------------------------------


def customers_contract() -> dict[str, Any]:
    levels = {"email": "pii", "note": "confidential", "income": "restricted"}
    logical = {"customer_id": "integer", "income": "number", "updated_at": "timestamp"}
    types = {"customer_id": "BIGINT", "income": "DOUBLE", "updated_at": "TIMESTAMPTZ"}
    properties = []
    for name in CLEAR.table().column_names:
        prop: dict[str, Any] = {"name": name, "logicalType": logical.get(name, "string")}
        prop["physicalType"] = types.get(name, "VARCHAR")
        if name in levels:
            prop["classification"] = levels[name]
        properties.append(prop)
    return data_contract("crm-customers", PORT, properties)


def customers_descriptor() -> dict[str, Any]:
    purpose = "customers of the crm domain (security suite)"
    return data_product(PRODUCT, "crm-customers", port=PORT, owner="crm-owner", purpose=purpose)


def entity_rows() -> pa.Table:
    """Entity rows for training sets: every customer, a day after its row's event time."""
    ids = list(range(1, CLEAR.rows + 1))
    times = [T0 + timedelta(days=1, hours=i) for i in range(CLEAR.rows)]
    return pa.table(
        {"customer_id": pa.array(ids, pa.int64()), "event_timestamp": pa.array(times, TS)}
    )


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _people(gov: GovernanceService) -> None:
    from meshops.mesh.service import MeshService

    for p in PRINCIPALS:
        if p.name == ADMIN:
            continue
        gov.create_user(p.name)
        if p.role != "consumer":
            gov.bind_role(p.name, p.role, p.scope)
    mesh = MeshService(gov.ctx)
    mesh.create_domain("crm", "customers", owners=["crm-owner"])
    mesh.create_domain("sales", "orders", owners=["sales-owner"])


def _grants(gov: GovernanceService) -> None:
    for p in PRINCIPALS:
        if p.grant == "masked":
            gov.grant_access(PRODUCT, PORT, p.name, purpose="security suite: masked")
        elif p.grant in ("unmasked", "filtered"):
            columns = list(MASKED_COLUMNS)
            row_filter = ROW_FILTER if p.grant == "filtered" else None
            gov.grant_access(
                PRODUCT, PORT, p.name, purpose=p.grant, columns=columns, row_filter=row_filter
            )
        elif p.grant == "revoked":
            grant = gov.grant_access(PRODUCT, PORT, p.name, purpose="security suite: revoked")
            gov.revoke_grant(grant.id, "security suite: revoked")


def _features(platform: Platform) -> str:
    """The feature view, materialized online, and the admin's training set (its id)."""
    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef

    view = FeatureView(
        name=VIEW,
        entities=["customer"],
        source=SourceRef(product=PRODUCT),
        event_time="updated_at",
        features=[
            Feature(name="region", type="string"),
            Feature(name="email", type="string"),
            Feature(name="note", type="string"),
            Feature(name="income", type="float64"),
        ],
        ttl_seconds=None,
        owner="crm-owner",
    )
    repo = FeatureRepo(
        entities=[Entity(name="customer", join_keys=["customer_id"])], feature_views=[view]
    )
    platform.features.apply(repo)
    platform.features.materialize([VIEW])
    made = platform.features.training_set(entity_rows(), FEATURES, name="admin-profile")
    return made.info.id


def _model(platform: Platform) -> None:
    from tests.serving.helpers import register_churn

    register_churn(platform, versions=1, domain="sales", name=MODEL)
    platform.serving.create_endpoint(ENDPOINT, f"{MODEL}@champion")
    platform.serving.create_endpoint(
        ENRICHED, f"{MODEL}@champion", features=FEATURES, entity_keys=["customer_id"]
    )


def scoring_record(customer_id: int) -> dict[str, Any]:
    """A record for the churn model, with the entity key the enriched endpoint looks up."""
    from tests.serving.helpers import record

    return {**record(customer_id), "customer_id": customer_id}


def _seed_prediction_log(world: SecurityHome) -> None:
    """The admin scores every customer on the enriched endpoint: the log then holds the
    enrichment the admin was served (clear values), as a busy endpoint's log would."""
    admin = world.client(ADMIN)
    records = [scoring_record(i) for i in range(1, CLEAR.rows + 1)]
    scored = admin.post(f"/v1/endpoints/{ENRICHED}/predict", json={"records": records})
    assert scored.status_code == 200, scored.text[:300]
    rolled = admin.post(f"/v1/endpoints/{ENRICHED}/log/roll")
    assert rolled.is_success, rolled.text[:300]


@dataclass
class SecurityHome:
    """The served world; see the module docstring."""

    home: Home
    server: LiveServer
    tokens: dict[str, str]
    snapshot_digest: str
    training_set_id: str
    scratch: Path
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def settings(self) -> Any:
        return self.home.settings

    def token(self, name: str) -> str:
        return self.tokens[name]

    def headers(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[name]}"}

    def client(self, name: str) -> httpx.Client:
        """An httpx client sending `name`'s token (closed at the end of the session)."""
        made = httpx.Client(base_url=self.url, headers=self.headers(name), timeout=60)
        self._clients.append(made)
        return made

    def admin(self) -> GovernanceService:
        return GovernanceService(self.home.context())

    def embedded(self, name: str) -> Platform:
        """The SDK embedded on the served home, acting as `name` (as `meshops.connect(home=,
        actor=)` does, without opening the home a second time)."""
        return Platform(self.settings, home=self.home, actor=Actor(name))

    def remote(self, name: str) -> Platform:
        """The SDK over HTTP with `name`'s token: `meshops.connect(url, token=)`."""
        import meshops

        return meshops.connect(self.url, token=self.tokens[name])

    def cli_env(self, name: str) -> dict[str, str]:
        scratch = self.scratch / "cli" / name
        scratch.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHOPS_")}
        env.update(
            MESHOPS_URI=self.url,
            MESHOPS_TOKEN=self.tokens[name],
            MESHOPS_HOME=str(scratch / "home"),  # never the developer's own home
            HOME=str(scratch),
            XDG_CONFIG_HOME=str(scratch / "config"),  # no stored credentials of the developer
            COLUMNS="400",  # rich tables print whole values, not ellipses
        )
        return env

    def cli(self, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        """`meshops <args>` as `name` against the server (no input, 60 s at most)."""
        command = [sys.executable, "-m", "meshops.cli.main", *args]
        return subprocess.run(
            command, env=self.cli_env(name), capture_output=True, timeout=60, check=False
        )

    def ui(self, name: str) -> httpx.Client:
        """A client signed in to the web UI as `name` through the login form (hidden form
        fields such as a CSRF token are sent back; the Origin is the server's own)."""
        made = httpx.Client(base_url=self.url, timeout=60, headers={"origin": self.url})
        self._clients.append(made)
        form = made.get("/ui/login")
        assert form.status_code == 200, form.text[:300]
        fields = hidden_fields(form.text)
        fields.update(token=self.tokens[name], next="/ui")
        signed_in = made.post("/ui/login", data=fields)
        assert signed_in.status_code in (302, 303), (signed_in.status_code, signed_in.text[:300])
        return made

    def reads(self, name: str) -> int:
        """Usage events recorded for `name` on crm.customers."""
        return self.admin().product_usage(PRODUCT).consumers.get(name, 0)

    def new_user(self, name: str, role: str | None = None, scope: str | None = None) -> str:
        """A fresh principal (optionally bound to `role`) and its token."""
        gov = self.admin()
        gov.create_user(name)
        if role:
            gov.bind_role(name, role, scope)
        token = gov.create_token(f"{name}-token", principal=name).token
        self.tokens[name] = token
        return token

    def close(self) -> None:
        for made in self._clients:
            made.close()


def build_world(home: Home, scratch: Path) -> tuple[dict[str, str], str, str]:
    """Principals, grants, product, features and model on `home`; returns (tokens, the
    snapshot digest of crm.customers 1.0.0, the admin's training set id)."""
    admin = Platform(home.settings, home=home)
    try:
        gov = GovernanceService(home.context())
        _people(gov)
        version = admin.mesh.publish_arrow(
            customers_descriptor(), {PORT: customers_contract()}, {PORT: CLEAR.table()}
        )
        _grants(gov)
        training_set_id = _features(admin)
        _model(admin)
    finally:
        admin.close()
    tokens = {
        p.name: gov.create_token(f"{p.name}-suite", principal=p.name).token for p in PRINCIPALS
    }
    digest = next(port.snapshot_digest for port in version.ports if port.name == PORT)
    return tokens, digest, training_set_id


@pytest.fixture(scope="session")
def sec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityHome]:
    """The governed world served on a loopback port, built once for the session."""
    from meshops.serving.runtime import close_all_runtimes

    root = tmp_path_factory.mktemp("security")
    home = Home(make_settings(root / "home"))
    try:
        tokens, digest, training_set_id = build_world(home, root)
        with LiveServer(home) as server:
            world = SecurityHome(home, server, tokens, digest, training_set_id, root)
            _seed_prediction_log(world)
            try:
                yield world
            finally:
                world.close()
                close_all_runtimes()
    finally:
        home.close()
