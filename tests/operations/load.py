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
# Warm-up (before the load and the fault): the first request of a kind in a worker process
# loads what it needs (the endpoint's model: scikit-learn imported, the model file read),
# which on a loaded 2-core machine can take longer than HANG_SECONDS. The server is warm
# when WARM_CLEAN_ROUNDS rounds in a row, each of WARM_CONNECTIONS concurrent requests of
# every kind on fresh connections (spread over the workers by the kernel), were all
# answered 2xx within WARM_FAST_SECONDS; a cold worker's answer would take longer.
WARM_CONNECTIONS = 8
WARM_CLEAN_ROUNDS = 3
WARM_FAST_SECONDS = 2.0
WARM_LIMIT_SECONDS = 300.0
WARM_CLIENT = 10_000  # warm-up requests write keys f"c{WARM_CLIENT + i}-{n}": not the load's

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


async def warm_up(base_url: str, headers: dict[str, str], requests: dict[str, Request]) -> int:
    """Send rounds of concurrent requests of every kind, each on a new connection, until
    WARM_CLEAN_ROUNDS rounds in a row are all answered 2xx within WARM_FAST_SECONDS (every
    worker has loaded what each kind needs); returns the rounds it took. Its answers are
    not part of any Load: the fault tests measure a warm server's behaviour."""
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
    timeout = httpx.Timeout(WARM_LIMIT_SECONDS)
    deadline = time.monotonic() + WARM_LIMIT_SECONDS
    clean = rounds = 0
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=timeout
    ) as http:
        while clean < WARM_CLEAN_ROUNDS:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server was not warm after {WARM_LIMIT_SECONDS:.0f} s")
            calls = [
                _timed(request(http, WARM_CLIENT + i, rounds))
                for request in requests.values()
                for i in range(WARM_CONNECTIONS)
            ]
            answers = await asyncio.gather(*calls, return_exceptions=True)
            fast = all(
                isinstance(a, tuple) and a[0] < 300 and a[1] <= WARM_FAST_SECONDS for a in answers
            )
            clean = clean + 1 if fast else 0
            rounds += 1
    return rounds


async def _timed(call: Awaitable[httpx.Response]) -> tuple[int, float]:
    start = time.monotonic()
    response = await call
    return response.status_code, time.monotonic() - start


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
