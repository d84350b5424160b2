"""Entities and feature services belong to a domain (declared, or that of the feature views
they use), so a role bound in one domain works for them: a data scientist bound in `sales`
builds a training set and reads online features of the sales feature service, over the SDK
embedded and over HTTP, and is refused in `marketing` with the role and domain to ask for.
The migration gives the stored definitions of an older home their domains."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace

import pyarrow as pa
import pytest
from alembic import command

from meshops.client import Platform
from meshops.features.models import (
    Entity,
    Feature,
    FeatureRepo,
    FeatureServiceDef,
    FeatureView,
    SourceRef,
)
from meshops.features.specs import parse_document
from meshops.features.store import feature_definitions
from meshops.governance.service import GovernanceService
from meshops.kernel import schema
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer, make_settings
from tests.features.helpers import publish
from tests.features.test_end_to_end import TS, hours, orders_v1, repo


def campaigns() -> pa.Table:
    return pa.table(
        {
            "customer_id": [1, 2],
            "event_time": pa.array([hours(1), hours(1)], TS),
            "clicks": [7, 8],
        }
    )


def marketing_repo() -> FeatureRepo:
    view = FeatureView(
        name="campaign_stats",
        entities=["customer"],
        source=SourceRef(product="marketing.campaign_stats"),
        event_time="event_time",
        features=[Feature(name="clicks", type="int64")],
    )
    return FeatureRepo(
        feature_views=[view],
        feature_services=[FeatureServiceDef(name="campaign", features=["campaign_stats:*"])],
    )


def entity_rows() -> pa.Table:
    return pa.table(
        {
            "customer_id": [1, 2],
            "event_timestamp": pa.array([hours(12)] * 2, TS),
            "amount": [5.0, 6.0],
        }
    )


@dataclass
class TwoDomains:
    """`sales` and `marketing` features applied and materialized by the admin; bob is a
    data scientist bound in `sales` only, with a grant on the sales product."""

    home: Home
    bob: Platform


@pytest.fixture(scope="module", params=["embedded", "http"])
def two_domains(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoDomains]:
    """One home per transport for the module (tests use their own names)."""
    with ExitStack() as stack:
        home = Home(make_settings(tmp_path_factory.mktemp("domains") / "home"))
        stack.callback(home.close)
        admin = Platform(home.settings, home=home)
        publish(admin, "sales.customer_stats", "1.0.0", orders_v1())
        publish(admin, "marketing.campaign_stats", "1.0.0", campaigns())
        admin.features.apply(repo())
        admin.features.apply(marketing_repo())
        admin.features.materialize(end=hours(12))
        governance = GovernanceService(home.context())
        governance.create_user("bob")
        governance.bind_role("bob", "data_scientist", "sales")
        governance.grant_access("sales.customer_stats", "main", "bob", purpose="tests")
        if request.param == "http":
            server = stack.enter_context(LiveServer(home))
            token = governance.create_token("bob-t", principal="bob").token
            remote = replace(home.settings, uri=server.url, token=token)
            bob = Platform(remote, http=HttpTransport(server.url, token))
        else:
            bob = Platform(home.settings, home=home, actor=Actor("bob"))
        stack.callback(bob.close)
        yield TwoDomains(home, bob)


def test_domains_come_from_the_views_or_the_definition(two_domains: TwoDomains) -> None:
    admin = Platform(two_domains.home.settings, home=two_domains.home)
    found = {(d.kind, d.name): d for d in admin.features.list_definitions()}
    assert found["feature_service", "churn"].domain == "sales"
    assert found["feature_service", "campaign"].domain == "marketing"
    assert found["feature_view", "campaign_stats"].domain == "marketing"
    # `customer` is used by views of both domains: each governs it.
    shared = found["entity", "customer"]
    assert shared.domain is None and shared.domains == ["marketing", "sales"]
    declared = FeatureServiceDef(name="mix", features=["campaign_stats:clicks"], domain="sales")
    admin.features.apply(FeatureRepo(feature_services=[declared]))
    mix = admin.features.get("mix", "feature_service")
    assert mix.domain == "sales" and mix.definition["domain"] == "sales"


def test_a_domain_scoped_data_scientist_builds_a_training_set_and_reads_online(
    two_domains: TwoDomains,
) -> None:
    bob = two_domains.bob
    training = bob.features.training_set(entity_rows(), "churn", name="bob_churn")
    assert training.info.created_by == "bob" and training.info.row_count == 2
    data = training.to_arrow()
    assert data.column("orders_7d").to_pylist() == [3, 11]
    assert bob.features.get_training_set(training.info.id).to_arrow().equals(data)
    assert [t.id for t in bob.features.list_training_sets()] == [training.info.id]
    online = bob.features.online(
        [{"customer_id": 1, "amount": 5.0}], service="churn", now=hours(12)
    )
    assert online.rows[0].values["orders_7d"] == 3 and online.rows[0].status == "ok"
    by_refs = bob.features.online([{"customer_id": 1}], ["customer_stats:*"], now=hours(12))
    assert by_refs.rows[0].values == {
        k: v for k, v in online.rows[0].values.items() if k in by_refs.features
    }
    # bob sees the definitions of his domain (and the entity sales shares), no others.
    names = {(d.kind, d.name) for d in bob.features.list_definitions()}
    assert {("feature_service", "churn"), ("feature_view", "customer_stats")} <= names
    assert ("entity", "customer") in names
    assert not {("feature_service", "campaign"), ("feature_view", "campaign_stats")} & names
    assert bob.features.get("churn", "feature_service").domain == "sales"


def test_another_domain_is_refused_with_the_role_and_domain_to_ask_for(
    two_domains: TwoDomains,
) -> None:
    bob = two_domains.bob
    with pytest.raises(Forbidden) as refused:
        bob.features.training_set(entity_rows(), "campaign", name="bob_campaign")
    message, detail = refused.value.message, refused.value.detail
    assert message == "bob may not features.read in domain 'marketing'"
    assert detail["domain"] == "marketing" and "data_scientist" in detail["roles"]
    assert "`meshops roles bind bob " in detail["fix"] and "--domain marketing`" in detail["fix"]
    with pytest.raises(Forbidden, match="in domain 'marketing'"):
        bob.features.online([{"customer_id": 1}], service="campaign", now=hours(12))
    with pytest.raises(Forbidden, match="in domain 'marketing'"):
        bob.features.online([{"customer_id": 1}], ["campaign_stats:clicks"], now=hours(12))
    with pytest.raises(Forbidden, match="in domain 'marketing'"):
        bob.features.get("campaign", "feature_service")
    # A service bob may declare in his domain still reads marketing's views: refused too.
    mixed = FeatureServiceDef(name="bob_mix", features=["campaign_stats:clicks"], domain="sales")
    bob.features.apply(FeatureRepo(feature_services=[mixed]))
    with pytest.raises(Forbidden, match="in domain 'marketing'"):
        bob.features.training_set(entity_rows(), "bob_mix", name="bob_mix")


def test_writes_are_authorized_in_the_definitions_domain(two_domains: TwoDomains) -> None:
    bob = two_domains.bob
    mine = FeatureServiceDef(name="bob_churn", features=["customer_stats:orders_7d"])
    assert bob.features.apply(FeatureRepo(feature_services=[mine])).created == [
        "feature_service:bob_churn"
    ]
    theirs = FeatureServiceDef(name="bob_clicks", features=["campaign_stats:clicks"])
    with pytest.raises(Forbidden, match=r"features\.write in domain 'marketing'"):
        bob.features.apply(FeatureRepo(feature_services=[theirs]))
    # An entity no view uses yet belongs to no domain: platform scope, or declare one.
    household = Entity(name="household", join_keys=["household_id"])
    with pytest.raises(Forbidden) as refused:
        bob.features.apply(FeatureRepo(entities=[household]))
    assert "belongs to no domain" in refused.value.message
    assert "`domain:`" in refused.value.detail["fix"]
    declared = household.model_copy(update={"domain": "sales"})
    assert bob.features.apply(FeatureRepo(entities=[declared])).created == ["entity:household"]
    # Re-applying what is unchanged needs no write (the shared entity is marketing's too).
    again = bob.features.apply(FeatureRepo(entities=repo().entities))
    assert again.unchanged == ["entity:customer"]


def test_a_yaml_domain_is_read_and_checked() -> None:
    parsed = parse_document(
        {
            "entities": [{"name": "customer", "join_keys": ["customer_id"], "domain": "sales"}],
            "feature_services": [{"name": "churn", "features": ["v:*"], "domain": "sales"}],
        },
        "features/a.yaml",
    )
    assert parsed.entities[0].domain == "sales" and parsed.feature_services[0].domain == "sales"
    with pytest.raises(InvalidInput) as bad:
        parse_document(
            {"entities": [{"name": "c", "join_keys": ["k"], "domain": "Sales Team"}]},
            "features/a.yaml",
        )
    assert bad.value.detail["field"].startswith("entities[0].domain")


def test_the_migration_gives_stored_definitions_their_domain(home: Home) -> None:
    admin = Platform(home.settings, home=home)
    publish(admin, "sales.customer_stats", "1.0.0", orders_v1())
    admin.features.apply(repo())
    cfg = schema._alembic_config(home.db)
    with home.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "features@features_0001")

    def stored() -> dict[tuple[str, str], tuple[str | None, dict[str, object]]]:
        with home.db.read() as conn:
            rows = conn.execute(feature_definitions.select()).mappings()
            return {(r["kind"], r["name"]): (r["domain"], r["definition"]) for r in rows}

    before = stored()
    assert before["entity", "customer"][0] is None
    assert "domain" not in before["feature_service", "churn"][1]
    schema.upgrade(home.db)
    after = stored()
    assert after["entity", "customer"][0] == "sales"
    assert after["feature_service", "churn"] == (
        "sales",
        {**before["feature_service", "churn"][1], "domain": None},
    )
    assert after["on_demand_feature", "amount_ratio"][0] == "sales"
    # The digests were recomputed: the same definitions apply as unchanged.
    result = admin.features.apply(repo())
    assert result.created == [] and result.updated == []
