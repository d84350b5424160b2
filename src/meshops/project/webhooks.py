"""Webhook signatures and payloads (pure functions, no I/O).

GitHub signs the raw request body with HMAC-SHA256 and the webhook secret and sends
`X-Hub-Signature-256: sha256=<hex>`; `X-GitHub-Event` names the event (push, pull_request,
ping) and `X-GitHub-Delivery` is a unique id per delivery (a redelivery reuses it), which the
service records to refuse replays. Signatures are compared with `hmac.compare_digest`
(constant time).

The generic webhook (other systems) signs `<timestamp>.<body>` the same way and sends
`X-Meshops-Signature-256`, `X-Meshops-Timestamp` (Unix seconds, refused when older than the
tolerance) and `X-Meshops-Delivery`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from meshops.kernel.errors import InvalidInput, Unauthenticated

GITHUB_SIGNATURE = "x-hub-signature-256"
GITHUB_EVENT = "x-github-event"
GITHUB_DELIVERY = "x-github-delivery"
GENERIC_SIGNATURE = "x-meshops-signature-256"
GENERIC_TIMESTAMP = "x-meshops-timestamp"
GENERIC_DELIVERY = "x-meshops-delivery"
GENERIC_EVENT = "x-meshops-event"
DEFAULT_TOLERANCE = 300  # seconds a generic delivery may be old (or ahead of our clock)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str | None, body: bytes, header: str | None) -> None:
    """Raise Unauthenticated unless `header` is the HMAC-SHA256 of `body` under `secret`."""
    if not secret:
        raise Unauthenticated(
            "webhooks are not configured on this server",
            {"fix": "set [webhooks] git_secret in meshops.toml or MESHOPS_WEBHOOK_SECRET"},
        )
    if not header:
        raise Unauthenticated("missing webhook signature", {"fix": "sign the body (HMAC-SHA256)"})
    expected = signature(secret, body)
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise Unauthenticated("bad webhook signature", {"fix": "use the same secret on both sides"})


def verify_generic(
    secret: str | None,
    body: bytes,
    header: str | None,
    timestamp: str | None,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    if not timestamp:
        raise Unauthenticated(f"missing {GENERIC_TIMESTAMP}", {"fix": "send Unix seconds"})
    verify(secret, timestamp.encode() + b"." + body, header)
    try:
        sent = float(timestamp)
    except ValueError:
        raise Unauthenticated(f"{GENERIC_TIMESTAMP} is not a number") from None
    if abs(now - sent) > tolerance:
        raise Unauthenticated(
            f"webhook delivery is too old (or from the future): {now - sent:.0f} s",
            {"fix": f"deliver within {tolerance:.0f} s of signing; replays are refused"},
        )


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise InvalidInput(f"webhook body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("webhook body must be a JSON object")
    return data


def summarize_github(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The fields of a push / pull_request payload the platform acts on."""
    repository = payload.get("repository") or {}
    summary: dict[str, Any] = {
        "source": "github",
        "event": event,
        "repository": repository.get("full_name") or repository.get("name"),
        "sender": (payload.get("sender") or {}).get("login"),
    }
    if event == "push":
        ref = str(payload.get("ref") or "")
        summary.update(
            ref=ref,
            branch=ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None,
            before=payload.get("before"),
            commit=payload.get("after"),
            deleted=bool(payload.get("deleted")),
            message=(payload.get("head_commit") or {}).get("message"),
        )
    elif event == "pull_request":
        pr = payload.get("pull_request") or {}
        summary.update(
            action=payload.get("action"),
            number=payload.get("number") or pr.get("number"),
            branch=(pr.get("head") or {}).get("ref"),
            base=(pr.get("base") or {}).get("ref"),
            commit=(pr.get("head") or {}).get("sha"),
            merged=bool(pr.get("merged")),
        )
    return summary
