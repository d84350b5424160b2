"""The retail example built, contract-tested and published over every transport."""

from __future__ import annotations

import json
from pathlib import Path

from meshops.client import Platform
from meshops.kernel import outbox
from meshops.kernel.home import Home


def _publish_all(platform: Platform, retail: Path) -> None:
    for folder in ("sales_orders", "customers_profiles", "sales_customer_revenue"):
        platform.mesh.publish(retail / folder)


def test_example_builds_tests_publishes_and_reads(platform: Platform, retail: Path) -> None:
    steps: list[str] = []
    report = platform.mesh.build(retail / "sales_orders", on_step=steps.append)
    assert report.passed and report.ports[0].rows == 2000
    assert steps[0] == "read input raw_orders"
    _publish_all(platform, retail)

    orders = platform.mesh.get_version("sales.orders")
    assert orders.urn == "meshops:dataproduct:sales.orders:1.0.0"
    assert orders.status == "published" and orders.row_count == 2000
    port = orders.port()
    assert port.name == "orders" and port.column("order_id").primary_key  # type: ignore[union-attr]
    assert {r.kind for r in port.quality} == {"schema", "quality", "sla"}
    assert all(r.passed for r in port.quality)
    amount = next(p for p in port.profile if p.name == "amount")
    assert amount.nulls == 0 and amount.histogram and amount.min >= 0

    revenue = platform.mesh.read("sales.customer_revenue@^1")
    assert revenue.column_names == ["segment", "country", "orders", "revenue"]
    joined = platform.mesh.sql(
        "select p.segment, count(*) as n from sales.orders o "
        "join customers.profiles p using (customer_id) where o.status <> 'returned' "
        "group by p.segment order by p.segment"
    )
    assert joined.column("n").to_pylist() == [
        sum(r["orders"] for r in revenue.to_pylist() if r["segment"] == s)
        for s in joined.column("segment").to_pylist()
    ]
    emails = platform.mesh.read("customers.profiles", columns=["email"])
    assert emails.column_names == ["email"] and emails.num_rows == 200

    aggregate = platform.mesh.get_version("sales.customer_revenue")
    upstream = platform.mesh.lineage("sales.customer_revenue", direction="upstream")
    assert {e.upstream for e in upstream if e.depth == 1} == {
        "meshops:dataproduct:sales.orders:1.0.0",
        "meshops:dataproduct:customers.profiles:1.0.0",
    }
    assert any(e.upstream.startswith("meshops:source:files:") for e in upstream if e.depth == 2)
    downstream = platform.mesh.lineage("sales.orders", direction="downstream")
    assert [e.downstream for e in downstream] == [aggregate.urn]

    hits = platform.mesh.search("revenue segment")
    assert hits.hits[0].product == "sales.customer_revenue"
    by_column = platform.mesh.search("email", classification="confidential")
    assert [h.product for h in by_column.hits] == ["customers.profiles"]
    assert platform.mesh.search("", domain="sales").facets["domain"] == {"sales": 2}

    again = platform.mesh.publish(retail / "sales_orders")
    assert again.reused and again.digest == orders.digest
    assert [v.version for v in platform.mesh.list_versions("sales.orders")] == ["1.0.0"]
    files = platform.mesh.export("sales.orders")
    assert set(files) == {"dataproduct.yaml", "orders.odcs.yaml"}
    slo = platform.mesh.slo("sales.orders")
    assert slo.freshness_ok is True and slo.quality_compliance == 1.0


def test_publish_emits_outbox_event_and_openlineage(sqlite_home: Home, retail: Path) -> None:
    """Inspects the home's outbox and settings directly, so it runs embedded only."""
    from dataclasses import replace

    platform = Platform(sqlite_home.settings, home=sqlite_home)
    assert platform.home is not None

    events = retail / "ol.jsonl"
    settings = replace(
        platform.home.settings,
        extra={"openlineage": {"transport": "file", "path": str(events)}},
    )
    platform.home.settings = settings
    platform.mesh.publish(retail / "sales_orders")
    with platform.home.db.read() as conn:
        published = outbox.recent(conn, outbox.DATAPRODUCT_PUBLISHED)
    assert published[0].payload["urn"] == "meshops:dataproduct:sales.orders:1.0.0"
    assert len(published[0].payload["digest"]) == 64
    event = json.loads(events.read_text().splitlines()[-1])
    assert event["eventType"] == "COMPLETE" and event["job"]["name"] == "sales.orders.build"
    fields = event["outputs"][0]["facets"]["schema"]["fields"]
    assert [f["name"] for f in fields][:2] == ["order_id", "customer_id"]
