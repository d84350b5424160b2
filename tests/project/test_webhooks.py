"""Webhooks over a real server: GitHub HMAC-SHA256 signatures (valid, invalid, missing),
replayed delivery ids, a push to main applied from the server's git checkout, and the
generic signed webhook (old timestamps refused)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx

from meshops.kernel import outbox
from meshops.kernel.home import Home
from meshops.project import scaffold
from meshops.project.webhooks import signature
from tests.conftest import LiveServer, make_settings
from tests.project.helpers import commit_all, git

SECRET = "It's a Secret to Everybody"


def test_signature_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": secret and payload below
    assert signature(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def _push(commit: str, branch: str = "main") -> bytes:
    return json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 40,
            "after": commit,
            "repository": {"full_name": "acme/shop", "name": "shop"},
            "head_commit": {"id": commit, "message": "meshops init"},
            "pusher": {"name": "alice"},
            "sender": {"login": "alice"},
        }
    ).encode()


def _headers(
    body: bytes, delivery: str, event: str = "push", secret: str = SECRET
) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(secret, body),
        "Content-Type": "application/json",
    }


def test_git_webhook_signatures_replays_and_apply(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    scaffold.init(origin, project="shop", owner="alice")
    commit = commit_all(origin, "meshops init")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "--quiet", str(origin), str(checkout))
    settings = make_settings(tmp_path / "home")
    extra = {
        "webhooks": {
            "git_secret": SECRET,
            "checkout": str(checkout),
            "generic": {"ci": {"secret": "generic-secret"}},
        }
    }
    home = Home(replace(settings, extra=extra))
    with LiveServer(home) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        body = _push(commit)
        unsigned = {k: v for k, v in _headers(body, "d-0").items() if "Signature" not in k}
        assert http.post("/v1/hooks/git", content=body, headers=unsigned).status_code == 401
        forged = _headers(body, "d-1", secret="wrong")
        response = http.post("/v1/hooks/git", content=body, headers=forged)
        assert response.status_code == 401 and response.json()["error"] == "unauthenticated"
        tampered = _headers(body, "d-2")
        response = http.post("/v1/hooks/git", content=body + b" ", headers=tampered)
        assert response.status_code == 401
        with home.db.read() as conn:
            assert outbox.recent(conn, outbox.WEBHOOK_RECEIVED) == []  # nothing done

        response = http.post("/v1/hooks/git", content=body, headers=_headers(body, "d-3"))
        assert response.status_code == 200, response.text
        delivery = response.json()
        assert delivery["status"] == "applied", delivery
        assert "new_version dataproduct sales.orders" in delivery["detail"]["applied"]
        replay = http.post("/v1/hooks/git", content=body, headers=_headers(body, "d-3"))
        assert replay.status_code == 409 and replay.json()["error"] == "conflict"
        # the refused attempts of d-0..d-2 left no record: d-2 is not a replay
        assert (
            http.post("/v1/hooks/git", content=body, headers=_headers(body, "d-2")).status_code
            == 200
        )

        h = server.headers
        applied = http.get("/v1/project/applied", params={"project": "shop"}, headers=h).json()
        assert {a["name"]: a["commit"] for a in applied}["sales.orders"] == commit
        with home.db.read() as conn:
            events = outbox.recent(conn, outbox.WEBHOOK_RECEIVED)
        assert [e.payload["delivery"] for e in events] == ["d-2", "d-3"]
        assert events[-1].payload["commit"] == commit and events[-1].payload["branch"] == "main"

        # a pull request is planned in a temporary worktree, nothing applied
        pr = json.dumps(
            {
                "action": "opened",
                "number": 7,
                "pull_request": {
                    "number": 7,
                    "head": {"ref": "main", "sha": commit},
                    "base": {"ref": "main"},
                },
                "repository": {"full_name": "acme/shop"},
            }
        ).encode()
        response = http.post(
            "/v1/hooks/git", content=pr, headers=_headers(pr, "d-4", "pull_request")
        )
        assert response.json()["status"] == "planned" and response.json()["detail"]["plan"] == []

        # generic signed webhook: valid, replayed, too old
        payload = json.dumps({"event": "model.retrain"}).encode()

        def generic(delivery: str, sent: float, secret: str = "generic-secret") -> httpx.Response:
            stamp = str(int(sent))
            return http.post(
                "/v1/hooks/generic/ci",
                content=payload,
                headers={
                    "X-Meshops-Delivery": delivery,
                    "X-Meshops-Timestamp": stamp,
                    "X-Meshops-Signature-256": signature(secret, stamp.encode() + b"." + payload),
                },
            )

        assert generic("g-1", time.time()).json()["status"] == "recorded"
        assert generic("g-1", time.time()).status_code == 409
        assert generic("g-2", time.time() - 3600).status_code == 401
        assert generic("g-3", time.time(), secret="nope").status_code == 401
        assert http.post("/v1/hooks/generic/unknown", content=payload).status_code == 401
    home.close()


def test_webhooks_refused_without_a_secret(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    with LiveServer(home) as server:
        body = _push("a" * 40)
        response = httpx.post(
            f"{server.url}/v1/hooks/git", content=body, headers=_headers(body, str(uuid.uuid4()))
        )
        assert response.status_code == 401
    home.close()
