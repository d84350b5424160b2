"""A seeded synthetic organisation: three business domains (customers, sales, support) and an
ML domain (retention), their source-aligned and aggregate data products, the feature
definitions over them, and the traffic an endpoint receives.

Everything is generated with `numpy.random.default_rng(seed)`; the same seed gives the same
rows, placed in time relative to the day the demo runs (`epoch`: the last period ends at
today's midnight, UTC, so the latest snapshots are within the feature views' TTL when the
demo looks them up online). Time is split into periods of `weeks` weeks; `regime` 1 is
the world the first model learns, `regime` 2 the world after a market change (customers
buy less but spend more per order, support tickets double, and what predicts churn
changes), so a model trained on regime 1 drifts and loses accuracy on regime 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from meshops.features.models import (
    Entity,
    Feature,
    FeatureRepo,
    FeatureServiceDef,
    FeatureView,
    SourceRef,
)

TS = pa.timestamp("us", tz="UTC")
FEATURES = ["orders_30d", "spend_30d", "tickets_30d", "days_since_last_order", "age"]
SNAPSHOT_DAYS = 14


@dataclass(frozen=True)
class Scale:
    customers: int
    orders_per_week: float  # mean per customer
    tickets_per_week: float
    weeks: int  # per period

    @classmethod
    def named(cls, name: str) -> Scale:
        if name == "full":
            return cls(customers=60_000, orders_per_week=0.45, tickets_per_week=0.06, weeks=26)
        if name == "small":
            return cls(customers=2_500, orders_per_week=0.45, tickets_per_week=0.06, weeks=16)
        raise ValueError(f"unknown scale {name!r}; use small or full")


@dataclass
class Period:
    """The source rows of one period (regime) of the organisation."""

    regime: int
    start: datetime
    end: datetime
    orders: pa.Table
    tickets: pa.Table


def profiles(scale: Scale, seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, 0])
    n = scale.customers
    ids = np.arange(1, n + 1, dtype=np.int64)
    signup_days = rng.integers(0, 3 * 365, size=n)
    signed_before = epoch(scale)
    signup = [signed_before - timedelta(days=int(d)) for d in signup_days]
    regions = np.array(["north", "south", "east", "west"])[rng.integers(0, 4, size=n)]
    plans = np.array(["basic", "plus", "pro"])[rng.choice(3, size=n, p=[0.6, 0.3, 0.1])]
    age = np.clip(rng.normal(42, 13, size=n), 18, 90).astype(np.int64)
    return pa.table(
        {
            "customer_id": ids,
            "email": [f"customer{i}@example.org" for i in ids],
            "region": regions,
            "plan": plans,
            "age": age,
            "signup_time": pa.array(signup, TS),
        }
    )


def _rates(scale: Scale, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-customer order rate, ticket rate and mean basket (fixed across periods)."""
    rng = np.random.default_rng([seed, 1])
    n = scale.customers
    order_rate = rng.gamma(2.0, scale.orders_per_week / 2.0, size=n)
    ticket_rate = rng.gamma(1.5, scale.tickets_per_week / 1.5, size=n)
    basket = rng.lognormal(3.6, 0.45, size=n)
    return order_rate, ticket_rate, basket


def epoch(scale: Scale, periods: int = 2, today: datetime | None = None) -> datetime:
    """The start of period 1: `periods` periods before today's midnight (UTC), so that the
    last period ends today. A fixed date would leave every snapshot older than the 60-day
    TTL of `customer_activity` and the online lookup stale."""
    day = (today or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(weeks=scale.weeks * periods)


def period(scale: Scale, seed: int, regime: int, start_of: datetime | None = None) -> Period:
    """Orders and support tickets of period `regime` (1, 2, ...), `scale.weeks` long, from
    `start_of` (period 1's start; by default `epoch(scale)`)."""
    rng = np.random.default_rng([seed, 10 + regime])
    order_rate, ticket_rate, basket = _rates(scale, seed)
    if regime >= 2:  # the market change: fewer, bigger orders; twice the support load
        order_rate = order_rate * 0.7
        basket = basket * 1.6
        ticket_rate = ticket_rate * 2.0
    start = (start_of or epoch(scale)) + timedelta(weeks=scale.weeks * (regime - 1))
    seconds = scale.weeks * 7 * 86400
    customers = np.arange(1, scale.customers + 1, dtype=np.int64)

    counts = rng.poisson(order_rate * scale.weeks)
    who = np.repeat(customers, counts)
    offset = rng.integers(0, seconds, size=who.size)
    amount = np.round(rng.lognormal(np.log(np.repeat(basket, counts)), 0.35), 2)
    order_id = np.arange(1, who.size + 1, dtype=np.int64) + 10_000_000 * regime
    channels = np.array(["web", "app", "store"])[rng.choice(3, size=who.size, p=[0.5, 0.3, 0.2])]
    orders = pa.table(
        {
            "order_id": order_id,
            "customer_id": who,
            "order_time": _times(start, offset),
            "amount": amount,
            "channel": channels,
        }
    ).sort_by("order_time")

    counts = rng.poisson(ticket_rate * scale.weeks)
    who = np.repeat(customers, counts)
    offset = rng.integers(0, seconds, size=who.size)
    severity = np.array(["low", "medium", "high"])[rng.choice(3, size=who.size, p=[0.6, 0.3, 0.1])]
    tickets = pa.table(
        {
            "ticket_id": np.arange(1, who.size + 1, dtype=np.int64) + 10_000_000 * regime,
            "customer_id": who,
            "opened_time": _times(start, offset),
            "severity": severity,
            "resolution_hours": np.round(rng.gamma(2.0, 12.0, size=who.size), 1),
        }
    ).sort_by("opened_time")
    return Period(regime, start, start + timedelta(seconds=seconds), orders, tickets)


def _times(start: datetime, offset_seconds: np.ndarray) -> pa.Array:
    base = np.datetime64(start.replace(tzinfo=None), "us")
    values = base + offset_seconds.astype("timedelta64[s]").astype("timedelta64[us]")
    return pa.array(values, pa.timestamp("us")).cast(TS)


ACTIVITY_SQL = """
WITH snapshots AS (
    SELECT s AS as_of FROM generate_series(
        CAST($first AS TIMESTAMPTZ), CAST($last AS TIMESTAMPTZ), INTERVAL {days} DAY
    ) AS g(s)
),
grid AS (SELECT c.customer_id, s.as_of FROM profiles c CROSS JOIN snapshots s),
o AS (
    SELECT g.customer_id, g.as_of, count(o.order_id) AS orders_30d,
           coalesce(sum(o.amount), 0.0) AS spend_30d,
           coalesce(date_diff('day', max(o.order_time), g.as_of), 30) AS days_since
    FROM grid g LEFT JOIN orders o
      ON o.customer_id = g.customer_id
     AND o.order_time <= g.as_of AND o.order_time > g.as_of - INTERVAL 30 DAY
    GROUP BY g.customer_id, g.as_of
),
t AS (
    SELECT g.customer_id, g.as_of, count(t.ticket_id) AS tickets_30d
    FROM grid g LEFT JOIN tickets t
      ON t.customer_id = g.customer_id
     AND t.opened_time <= g.as_of AND t.opened_time > g.as_of - INTERVAL 30 DAY
    GROUP BY g.customer_id, g.as_of
)
SELECT o.customer_id, o.as_of, CAST(o.orders_30d AS BIGINT) AS orders_30d,
       CAST(round(o.spend_30d, 2) AS DOUBLE) AS spend_30d,
       CAST(t.tickets_30d AS BIGINT) AS tickets_30d,
       CAST(o.days_since AS DOUBLE) AS days_since_last_order
FROM o JOIN t USING (customer_id, as_of)
ORDER BY as_of, customer_id
"""


def customer_activity(
    customers: pa.Table, orders: pa.Table, tickets: pa.Table, start: datetime, end: datetime
) -> pa.Table:
    """The aggregate: per customer every two weeks, activity over the previous 30 days."""
    import duckdb

    first = start + timedelta(days=30)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("profiles", customers.select(["customer_id"]))
        con.register("orders", orders)
        con.register("tickets", tickets)
        sql = ACTIVITY_SQL.format(days=SNAPSHOT_DAYS).replace("$first", "?").replace("$last", "?")
        table = con.sql(sql, params=[first, end]).to_arrow_table()
    finally:
        con.close()
    return table.set_column(1, "as_of", table.column("as_of").cast(TS))


def _z(values: np.ndarray, mean: float, std: float) -> np.ndarray:
    return (values - mean) / std


def churn_labels(activity: pa.Table, customers: pa.Table, regime: int, seed: int) -> pa.Table:
    """One observed churn outcome per customer, at one of the period's snapshots (the label
    is taken one hour after the snapshot, so the point-in-time join uses that snapshot)."""
    rng = np.random.default_rng([seed, 20 + regime])
    n = customers.num_rows
    snapshots = activity.num_rows // n  # the aggregate is a full grid: snapshot x customer
    chosen = rng.integers(0, snapshots, size=n)
    picked = activity.take(pa.array(chosen * n + np.arange(n)))
    age = customers.column("age").to_numpy()[picked.column("customer_id").to_numpy() - 1]
    orders = picked.column("orders_30d").to_numpy().astype(float)
    spend = picked.column("spend_30d").to_numpy()
    tickets = picked.column("tickets_30d").to_numpy().astype(float)
    idle = picked.column("days_since_last_order").to_numpy()
    z_orders, z_spend = _z(orders, 1.9, 1.6), _z(spend, 80.0, 80.0)
    z_tickets, z_idle, z_age = _z(tickets, 0.25, 0.5), _z(idle, 12.0, 9.0), _z(age, 42.0, 13.0)
    if regime == 1:  # idle, unhappy customers leave
        logit = -0.6 + 1.1 * z_tickets - 0.9 * z_orders + 1.0 * z_idle - 0.2 * z_age
    else:  # after the change: big spenders shop around, support no longer matters
        logit = -0.6 + 1.6 * z_spend - 0.3 * z_tickets + 0.8 * z_orders + 0.5 * z_age
    churned = rng.random(picked.num_rows) < 1.0 / (1.0 + np.exp(-logit))
    stamp = picked.column("as_of").cast(pa.timestamp("us")).to_numpy() + np.timedelta64(1, "h")
    return pa.table(
        {
            "customer_id": picked.column("customer_id"),
            "event_timestamp": pa.array(stamp, pa.timestamp("us")).cast(TS),
            "churned": churned.astype(np.int64),
        }
    ).sort_by([("event_timestamp", "ascending"), ("customer_id", "ascending")])


# --- descriptors and contracts ------------------------------------------------------------

_LOGICAL = {"int64": "integer", "double": "number", "string": "string", "bool": "boolean"}


def _logical(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    return _LOGICAL.get(str(arrow_type), "string")


@dataclass(frozen=True)
class ProductSpec:
    product: str  # domain.name
    port: str
    description: str
    owner: str
    tags: tuple[str, ...]
    keys: tuple[str, ...]
    descriptions: dict[str, str]
    classification: dict[str, str]
    min_rows: int = 1


def documents(
    spec: ProductSpec, version: str, table: pa.Table
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    domain, name = spec.product.split(".")
    contract_id = f"{domain}-{name}-{spec.port}".replace("_", "-")
    properties = []
    for field in table.schema:
        prop: dict[str, Any] = {
            "name": field.name,
            "logicalType": _logical(field.type),
            "required": field.name in spec.keys,
            "description": spec.descriptions.get(field.name, field.name.replace("_", " ")),
        }
        if field.name in spec.keys and len(spec.keys) == 1:
            prop["primaryKey"] = True
            prop["unique"] = True
        if field.name in spec.classification:
            prop["classification"] = spec.classification[field.name]
        properties.append(prop)
    descriptor = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": spec.product,
        "name": name,
        "domain": domain,
        "version": version,
        "status": "active",
        "description": {"purpose": spec.description},
        "tags": list(spec.tags),
        "team": {"members": [{"username": spec.owner, "role": "owner"}]},
        "outputPorts": [{"name": spec.port, "version": version, "contractId": contract_id}],
    }
    contract = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": contract_id,
        "version": version,
        "status": "active",
        "domain": domain,
        "schema": [
            {
                "name": spec.port,
                "physicalType": "table",
                "properties": properties,
                "quality": [{"metric": "rowCount", "mustBeGreaterThan": spec.min_rows - 1}],
            }
        ],
    }
    return descriptor, {spec.port: contract}


PRODUCTS: dict[str, ProductSpec] = {
    "customers.profiles": ProductSpec(
        "customers.profiles",
        "profiles",
        "One profile per customer: contact, region, plan and age (source-aligned, CRM).",
        "carol",
        ("customers", "source-aligned", "pii"),
        ("customer_id",),
        {"email": "Contact e-mail address.", "signup_time": "When the customer signed up."},
        {"email": "confidential"},
    ),
    "sales.orders": ProductSpec(
        "sales.orders",
        "orders",
        "Every order of the last period, from the order system (source-aligned).",
        "sam",
        ("sales", "source-aligned"),
        ("order_id",),
        {"amount": "Order amount in EUR."},
        {},
    ),
    "support.tickets": ProductSpec(
        "support.tickets",
        "tickets",
        "Support tickets opened in the last period, from the help desk (source-aligned).",
        "sue",
        ("support", "source-aligned"),
        ("ticket_id",),
        {"resolution_hours": "Hours until the ticket was resolved."},
        {},
    ),
    "sales.customer_activity": ProductSpec(
        "sales.customer_activity",
        "activity",
        "Per customer every two weeks: orders, spend, tickets and idle days over the "
        "previous 30 days (aggregate of sales.orders and support.tickets).",
        "sam",
        ("sales", "aggregate", "customer-360"),
        ("customer_id", "as_of"),
        {"as_of": "Snapshot time.", "spend_30d": "Spend in EUR over 30 days."},
        {},
    ),
    "customers.churn_labels": ProductSpec(
        "customers.churn_labels",
        "labels",
        "Observed churn outcomes of the latest period: did the customer cancel within 60 "
        "days of the observation (source-aligned, from billing).",
        "carol",
        ("customers", "labels", "source-aligned"),
        ("customer_id", "event_timestamp"),
        {"churned": "1 when the customer cancelled."},
        {},
    ),
}

DOMAINS = {
    "customers": ("Customer master data, profiles and outcomes (PII).", "carol"),
    "sales": ("Orders, revenue and customer activity.", "sam"),
    "support": ("The help desk: tickets and their resolution.", "sue"),
    "retention": ("The ML domain: churn models, their features, endpoints and monitors.", "dana"),
}


def publish(
    platform: Any,
    product: str,
    version: str,
    table: pa.Table,
    inputs: list[str] | None = None,
) -> Any:
    spec = PRODUCTS[product]
    descriptor, contracts = documents(spec, version, table)
    return platform.mesh.publish_arrow(descriptor, contracts, {spec.port: table}, inputs=inputs)


def feature_repo(owner: str = "dana") -> FeatureRepo:
    activity = FeatureView(
        name="customer_activity",
        entities=["customer"],
        source=SourceRef(product="sales.customer_activity", port="activity"),
        event_time="as_of",
        features=[
            Feature(name="orders_30d", type="int64", description="Orders in the last 30 days."),
            Feature(name="spend_30d", type="float64", description="Spend in the last 30 days."),
            Feature(name="tickets_30d", type="int64", description="Tickets in the last 30 days."),
            Feature(
                name="days_since_last_order",
                type="float64",
                description="Days since the last order (30 when none in 30 days).",
            ),
        ],
        ttl_seconds=60 * 86400,
        owner=owner,
        description="Recent activity per customer, from the sales aggregate.",
    )
    profile = FeatureView(
        name="customer_profile",
        entities=["customer"],
        source=SourceRef(product="customers.profiles", port="profiles"),
        event_time="signup_time",
        features=[Feature(name="age", type="int64", description="Age in years.")],
        owner=owner,
        description="Static profile attributes (non-PII only).",
    )
    return FeatureRepo(
        entities=[Entity(name="customer", join_keys=["customer_id"], description="A customer.")],
        feature_views=[activity, profile],
        feature_services=[
            FeatureServiceDef(
                name="churn_features",
                features=["customer_activity:*", "customer_profile:age"],
                description="What the churn model sees.",
                owner=owner,
            )
        ],
    )


def traffic(activity: pa.Table, customers: pa.Table, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` scoring requests: feature rows of the period's latest snapshots (what the
    application sends), in the model's input schema."""
    rng = np.random.default_rng([seed, 30])
    import pyarrow.compute as pc

    latest = pc.max(activity.column("as_of")).as_py()
    since = pa.scalar(latest - timedelta(days=SNAPSHOT_DAYS * 3), TS)
    recent = activity.filter(pc.greater_equal(activity.column("as_of"), since))
    rows = rng.integers(0, recent.num_rows, size=n)
    picked = recent.take(pa.array(rows)).to_pydict()
    ages = customers.column("age").to_pylist()  # customer ids are 1..n
    return [
        {
            "orders_30d": int(picked["orders_30d"][i]),
            "spend_30d": float(picked["spend_30d"][i]),
            "tickets_30d": int(picked["tickets_30d"][i]),
            "days_since_last_order": float(picked["days_since_last_order"][i]),
            "age": int(ages[picked["customer_id"][i] - 1]),
        }
        for i in range(n)
    ]
