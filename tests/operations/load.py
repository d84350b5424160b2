"""A closed-loop load generator for the fault tests: N asyncio clients on one httpx
connection pool, each repeating its kind of request until told to stop, every answer
recorded with when it was sent (so answers can be told apart by phase of the fault)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# Longer than any answer of a healthy server under this load: reaching it is a hang.
HANG_SECONDS = 15.0

Request = Callable[[httpx.AsyncClient, int, int], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Answer:
    kind: str
    sent: float  # time.monotonic() when sent
    status: int  # 0: no HTTP answer (see `failure`)
    error: str = ""  # the body's `error` name, or the transport failure's class
    retry_after: str | None = None
    message: str = ""


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    # Per kind, the keys (f"c{client}-{n}") of the requests answered 2xx.
    acknowledged: dict[str, list[str]] = field(default_factory=dict)

    def count(self) -> dict[str, int]:
        return dict(Counter(f"{a.kind} {a.status} {a.error}".strip() for a in self.answers))

    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.status not in {200, 204}]

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.sent < end]


def _answer(kind: str, sent: float, response: httpx.Response) -> Answer:
    error = message = ""
    if response.status_code >= 300:
        try:
            body: Any = response.json()
            error, message = str(body.get("error", "")), str(body.get("message", ""))
        except ValueError:
            error = "not json"
    return Answer(
        kind, sent, response.status_code, error, response.headers.get("retry-after"), message
    )


async def _client(
    http: httpx.AsyncClient,
    load: Load,
    kind: str,
    request: Request,
    *,
    client: int,
    done: asyncio.Event,
) -> None:
    n = 0
    while not done.is_set():
        sent = time.monotonic()
        try:
            response = await request(http, client, n)
        except httpx.TimeoutException as exc:
            load.answers.append(Answer(kind, sent, 0, f"hang ({type(exc).__name__})"))
            continue
        except httpx.TransportError as exc:
            load.answers.append(Answer(kind, sent, 0, type(exc).__name__))
            await asyncio.sleep(0.05)
            continue
        answer = _answer(kind, sent, response)
        load.answers.append(answer)
        if response.status_code in {200, 201, 204}:
            load.acknowledged.setdefault(kind, []).append(f"c{client}-{n}")
        if response.status_code not in {200, 204}:
            await asyncio.sleep(0.05)  # a client backs off a little on a refusal
        n += 1


async def run_load(
    base_url: str,
    headers: dict[str, str],
    requests: dict[str, Request],
    *,
    clients: int,
    during: Callable[[], Awaitable[None]],
    after: float,
) -> Load:
    """`clients` clients spread over the kinds of `requests` while `during` (the fault)
    runs, and for `after` seconds more. A request names what it writes by f"c{client}-{n}"."""
    load = Load()
    kinds = list(requests)
    # Idle connections are dropped by the client before uvicorn's 5 s keep-alive closes
    # them: otherwise a request sent on a connection the server is closing at that moment
    # fails in transport (a race of HTTP keep-alive, whatever the server's health).
    limits = httpx.Limits(
        max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0
    )
    timeout = httpx.Timeout(HANG_SECONDS)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=timeout
    ) as http:
        done = asyncio.Event()

        async def fault_then_stop() -> None:
            await during()
            await asyncio.sleep(after)
            done.set()

        tasks = [
            _client(
                http,
                load,
                kinds[i % len(kinds)],
                requests[kinds[i % len(kinds)]],
                client=i,
                done=done,
            )
            for i in range(clients)
        ]
        await asyncio.gather(fault_then_stop(), *tasks)
    return load
