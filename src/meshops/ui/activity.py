"""The home page's recent activity as sentences ("alice finished run 'rf-3' (0f5ce960) in
churn", "churn v2 became @champion") instead of raw actions and URNs.

Audit events name objects by URN; runs are looked up (name and experiment) through the
tracking service with the viewer's rights, and anything the viewer may not read keeps a
plain description. Consecutive events of one actor on one object (a run created, then
finished) read as one line: the latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from meshops.governance.models import AuditEntry as AuditEvent
from meshops.ui.web import urn_href, urn_label


class Names(Protocol):
    """Lookups the sentences need, made with the viewer's rights (None: not visible)."""

    def run(self, run_id: str) -> tuple[str, str] | None:
        """(run name, experiment name)"""

    def alias(self, model: str, version: int, at: datetime) -> str | None:
        """The alias that moved to this version at that time."""


VERBS = {
    "tracking.create_run": "started",
    "tracking.end_run": "finished",
    "tracking.log_input": "recorded an input of",
    "tracking.log_artifact": "logged an artifact to",
    "registry.create_model": "created",
    "registry.register_version": "registered",
    "registry.update_version": "updated",
    "registry.set_model_card": "wrote the model card of",
    "dataproduct.publish": "published",
    "pipelines.submit": "queued",
    "pipelines.start_run": "started",
    "pipelines.finish_run": "finished",
    "serving.create_endpoint": "created endpoint",
    "monitoring.create_monitor": "created",
    "monitoring.add_rule": "added an alert rule to",
    "pipelines.create_trigger": "created a trigger for",
    "features.apply": "applied",
    "features.materialize": "materialized",
    "features.training_set": "built",
    "policy.save": "saved policy",
    "domain.create": "created domain",
    "user.create": "added user",
    "role.bind": "gave a role to",
    "token.create": "created an API token for",
}
QUIET = frozenset({"pipelines.claim", "pipelines.record_steps"})  # bookkeeping, not news


@dataclass
class Line:
    at: datetime
    actor: str
    text: str  # the sentence after the actor's name ("" when the sentence has no actor)
    href: str | None
    action: str
    object: str


def describe(events: list[AuditEvent], names: Names, limit: int = 15) -> list[Line]:
    lines: list[Line] = []
    for event in events:
        if event.action in QUIET:
            continue
        if lines and _same_story(lines[-1], event):
            continue  # the newer event on the same object already tells the story
        text = _sentence(event, names)
        lines.append(
            Line(event.at, event.actor, text, urn_href(event.object), event.action, event.object)
        )
        if len(lines) == limit:
            break
    return lines


FOLDED_AREAS = ("tracking.", "pipelines.")  # a run's create/log/end: one line, the latest


def _same_story(newer: Line, event: AuditEvent) -> bool:
    return (
        newer.object == event.object
        and newer.actor == event.actor
        and any(newer.action.startswith(a) and event.action.startswith(a) for a in FOLDED_AREAS)
    )


def _sentence(event: AuditEvent, names: Names) -> str:
    special = _special(event, names)
    if special:
        return special
    thing = _thing(event.object, names)
    verb = VERBS.get(event.action) or event.action.split(".")[-1].replace("_", " ")
    return f"{verb} {thing}"


def _special(event: AuditEvent, names: Names) -> str:
    detail: dict[str, Any] = event.detail or {}
    parts = event.object.split(":")
    if event.action == "registry.set_alias" and len(parts) >= 4 and parts[3].isdigit():
        alias = names.alias(parts[2], int(parts[3]), event.at)
        target = f"{parts[2]} v{parts[3]}"
        return f"promoted {target} to @{alias}" if alias else f"moved an alias to {target}"
    if event.action == "registry.record_comparison" and detail:
        return (
            f"compared {detail.get('model_name')} v{detail.get('challenger_version')} with "
            f"v{detail.get('champion_version')} on {detail.get('metric')}"
        )
    if event.action == "model.promotion_gate" and detail:
        verdict = "allowed" if detail.get("allowed") else "refused"
        return (
            f"passed the promotion gate: {verdict} {detail.get('model')} "
            f"v{detail.get('version')} as @{detail.get('alias')}"
        )
    if event.action == "monitoring.run":
        return f"ran monitor {detail.get('monitor', '')}: {detail.get('status', 'done')}"
    if event.action == "monitoring.alert_open":
        return f"opened alert #{parts[-1]}"
    if event.action.startswith("access.") and len(parts) >= 4:
        verb = {
            "access.request": "asked for access to",
            "access.approve": "approved access to",
            "access.deny": "denied access to",
        }.get(event.action, event.action)
        return f"{verb} {parts[2]} (port {parts[3]})"
    return ""


def _thing(urn: str, names: Names) -> str:
    parts = urn.split(":")
    kind = parts[1] if len(parts) > 2 else ""
    if kind == "run":
        named = names.run(parts[2])
        short = parts[2][:8]
        if named:
            name, experiment = named
            return f"run '{name}' ({short}) in {experiment}"
        return f"run {short}"
    if kind == "model" and len(parts) >= 4:
        return f"{parts[2]} v{parts[3]}"
    if kind == "model":
        return f"model {parts[2]}"
    if kind == "dataproduct" and len(parts) >= 4:
        return f"{parts[2]} {parts[3]}"
    if kind == "pipelinerun":
        return f"pipeline run {parts[2][:8]}"
    label, sub = urn_label(urn)
    if kind in ("user", "domain", "policy", "endpoint"):
        return label
    return f"{sub} {label}".strip() if sub else label
