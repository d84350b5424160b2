"""B5 load generator: one process, one uvloop event loop, kept as light as possible.

It shares the machine's cores with the server under test, so every microsecond it spends
per request is taken from that server, and a heavy client flattens the differences between
servers. Each connection is an asyncio protocol that writes one pre-encoded HTTP/1.1
request on a keep-alive connection and parses the answer with httptools (uvicorn's parser);
nothing else happens per request but taking the time. The same client drives every server
with the same body bytes, so the comparison stays fair.

Two modes, one figure each:

closed  CLIENTS connections each send their next request as soon as the previous answer is
        in, for SECONDS. `rps` is the throughput at saturation: what the server does with
        the cores it gets. Latencies here are mostly queueing (by Little's law about
        CLIENTS / rps whatever the server), so they say little about the server itself.
open    requests are started at a fixed RATE per second (on schedule, not after the
        previous answer) over a pool of CLIENTS connections, for SECONDS. Each latency is
        measured from the request's scheduled start, so a stalled server delays every
        request queued behind it too (no coordinated omission). At a rate every server
        sustains, `p50_ms`/`p99_ms` are the latency a client sees: that is where a goal
        like "p99 < 20 ms" can be judged.

    python b5_loadgen.py URL BODY_FILE CLIENTS SECONDS [--rate R]

prints one JSON object: mode, requests (answered 200), errors, seconds, rps, p50_ms,
p99_ms, max_ms, and client_cpu_us (this process's CPU time per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad answer: {exc}"))

    def on_message_complete(self) -> None:  # called by the parser
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    async def send(self) -> int:
        if self.transport is None:
            raise ConnectionError("not connected")
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        return await self.answer


class Client:
    def __init__(self, url: str, body: bytes) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        self.latencies: list[float] = []
        self.errors = 0

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: Connection(self.request), self.host, self.port
        )
        return protocol

    async def request_once(self, conn: Connection, started: float) -> Connection:
        """Send one request; returns the connection to use next (a new one after a failure)."""
        try:
            status = await conn.send()
        except ConnectionError:
            self.errors += 1
            return await self.connect()
        if status == 200:
            self.latencies.append(time.perf_counter() - started)
        else:
            self.errors += 1
        return conn

    async def closed_loop(self, clients: int, seconds: float) -> float:
        conns = [await self.connect() for _ in range(clients)]
        stop_at = time.perf_counter() + seconds

        async def loop(conn: Connection) -> None:
            while time.perf_counter() < stop_at:
                conn = await self.request_once(conn, time.perf_counter())
            _close(conn)

        began = time.perf_counter()
        await asyncio.gather(*(loop(c) for c in conns))
        return time.perf_counter() - began

    async def open_loop(self, clients: int, seconds: float, rate: float) -> float:
        idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(clients):
            idle.put_nowait(await self.connect())

        async def one(scheduled: float) -> None:
            conn = await idle.get()  # waiting for a free connection counts as latency
            idle.put_nowait(await self.request_once(conn, scheduled))

        began = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            scheduled = began + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        while not idle.empty():
            _close(idle.get_nowait())
        return elapsed


def _close(conn: Connection) -> None:
    if conn.transport is not None:
        conn.transport.close()


def summary(client: Client, mode: str, elapsed: float, cpu: float) -> dict[str, Any]:
    latencies = sorted(client.latencies)
    done = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(done - 1, int(p * done))] * 1000 if done else 0.0

    return {
        "mode": mode,
        "requests": done,
        "errors": client.errors,
        "seconds": elapsed,
        "rps": done / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if done else 0.0,
        "client_cpu_us": cpu / max(1, done + client.errors) * 1e6,
    }


async def run(url: str, body: bytes, clients: int, seconds: float, rate: float | None) -> Any:
    client = Client(url, body)
    cpu = time.process_time()
    if rate is None:
        elapsed = await client.closed_loop(clients, seconds)
    else:
        elapsed = await client.open_loop(clients, seconds, rate)
    mode = "closed" if rate is None else "open"
    return summary(client, mode, elapsed, time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("clients", type=int)
    parser.add_argument("seconds", type=float)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests/s")
    args = parser.parse_args()
    with open(args.body_file, "rb") as fh:
        body = fh.read()
    result = uvloop.run(run(args.url, body, args.clients, args.seconds, args.rate))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
