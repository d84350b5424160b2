"""Typed outbox events: each topic's payload model (declared in the emitting area) is what
is stored, read back as that model, and what a trigger's `match` keys are checked against."""

from __future__ import annotations

from pathlib import Path

import pytest

import meshops.project.events  # noqa: F401 - the wiring module registers it in the SDK
from meshops.client import Platform
from meshops.kernel import outbox
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.pipelines.events import PipelineRunFinished
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.triggers import TRIGGER_TOPICS
from meshops.project.events import WebhookReceived
from tests.pipelines import flows
from tests.pipelines.conftest import FLOWS


def test_every_trigger_topic_has_a_payload_model() -> None:
    for topic in TRIGGER_TOPICS:
        model = outbox.payload_model(topic)
        assert model is not None and model.topic == topic


def test_an_unknown_match_key_is_refused_naming_it_and_the_valid_keys(
    platform: Platform,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        platform.pipelines.create_trigger(
            "typo", outbox.MONITOR_ALERT, f"{FLOWS}:on_event", match={"severty": "critical"}
        )
    assert "severty" in refused.value.message
    assert refused.value.detail["field"] == "match.severty"
    assert "severity" in refused.value.detail["valid_keys"]
    assert platform.pipelines.list_triggers() == []  # nothing was created


def test_dotted_match_keys_reach_into_free_form_fields_only(home: Home) -> None:
    service = PipelinesService(home.context())
    after = outbox.PIPELINE_RUN_FINISHED
    service.create_trigger("by-origin", after, f"{FLOWS}:on_event", match={"origin.kind": "x"})
    hooked = outbox.WEBHOOK_RECEIVED
    service.create_trigger("by-body", hooked, f"{FLOWS}:on_event", match={"payload.a.b": 1})
    with pytest.raises(InvalidInput, match="'kind' is not a field of status") as refused:
        service.create_trigger("deep", after, f"{FLOWS}:on_event", match={"status.kind": "x"})
    assert refused.value.detail["valid_keys"] == []  # a string has no fields
    assert [t.name for t in service.list_triggers()] == ["by-body", "by-origin"]


def test_a_typed_event_round_trips_in_the_stored_shape(home: Home) -> None:
    finished = PipelineRunFinished(
        run_id="r1", pipeline="p", status="succeeded", origin={"kind": "manual"}
    )
    received = WebhookReceived(source="ci", event="build", delivery="d1", payload={"ok": True})
    with home.db.begin() as conn:
        outbox.emit(conn, "meshops:pipelinerun:r1", finished, "alice")
        outbox.emit(conn, "webhook:ci:d1", received, "alice")
    with home.db.read() as conn:
        (stored_run,) = outbox.recent(conn, outbox.PIPELINE_RUN_FINISHED)
        (stored_hook,) = outbox.recent(conn, outbox.WEBHOOK_RECEIVED)
    assert stored_run.payload == {
        "run_id": "r1",
        "pipeline": "p",
        "status": "succeeded",
        "origin": {"kind": "manual"},
    }
    assert stored_run.typed() == finished
    # Fields a source does not send stay out of the stored payload.
    assert stored_hook.payload == {
        "source": "ci",
        "event": "build",
        "delivery": "d1",
        "payload": {"ok": True},
    }
    assert stored_hook.typed() == received


def test_a_finished_run_emits_its_typed_event(home: Home, marks: Path) -> None:
    service = PipelinesService(home.context())
    detail = service.run(flows.retrying, {"marks": str(marks), "succeed_on": 1}, track=False)
    with home.db.read() as conn:
        (event,) = outbox.recent(conn, outbox.PIPELINE_RUN_FINISHED)
    assert event.subject == detail.run.urn
    assert event.typed() == PipelineRunFinished(
        run_id=detail.run.id, pipeline="retrying", status="succeeded", origin={"kind": "local"}
    )
