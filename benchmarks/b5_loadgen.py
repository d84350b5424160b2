"""B5 load generator (its own process): N concurrent httpx.AsyncClient loops for D seconds
against one URL; prints {requests, errors, rps, p50_ms, p99_ms} as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx


async def run(url: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}
    stop_at = time.perf_counter() + seconds

    async def loop(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                response = await http.post(url, content=body, headers=headers)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        began = time.perf_counter()
        await asyncio.gather(*(loop(http) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    url, body_file, clients, seconds = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    with open(body_file, "rb") as fh:
        body = fh.read()
    print(json.dumps(asyncio.run(run(url, body, clients, seconds))))


if __name__ == "__main__":
    main()
