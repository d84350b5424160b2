"""Faults of the services `meshops server --workers 2` depends on, under load from 32
clients: PostgreSQL restarted (crashed and started again) and Redis stopped and started.
While a service is down the requests that need it get 503 in the API's error shape with
`Retry-After` (never a hang, a dropped connection or a 500); the server recovers by itself;
every write the server acknowledged is found afterwards. The load starts on a warm server
(`warm_up`: every worker has loaded the model and the feature code), so what is measured
is the fault, not a cold start. The figures go to docs/operations.md ("Faults")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from tests.operations.load import Answer, Load, Request, run_load, warm_up
from tests.operations.platform_setup import (
    Prepared,
    logged_predictions,
    lookup,
    predict,
    prepare,
    write_tag,
)
from tests.operations.server import meshops_server
from tests.operations.services import PrivatePostgres, PrivateRedis, private_postgres, private_redis

CLIENTS = 32
WARM_SECONDS = 2.0
OUTAGE_SECONDS = 5.0
# Load goes on this long after the service is back; the server must have recovered (every
# request succeeding) within RECOVERY_LIMIT of it, and stay so for the last HEALTHY_SECONDS
# (the bound is generous: 2 cores shared with the rest of the suite).
AFTER_SECONDS = 7.0
RECOVERY_LIMIT = AFTER_SECONDS - 2.0
HEALTHY_SECONDS = 2.0


def test_postgres_restart_under_load(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        prepared = prepare(tmp_path / "home", postgres.url, online_store=None)
        with meshops_server(prepared.home, prepared.env) as base:
            load, back = _load_through(base, prepared, partial(_restart_postgres, postgres))
            found = _tags_found(base, prepared)
        logged = logged_predictions(prepared)  # the server stopped: its buffer is written
    _report("postgres", load)
    _assert_outage_answered_cleanly(load, expect_kinds={"write"})
    _assert_recovered(load, back)
    written = load.acknowledged.get("write", [])
    missing = set(written) - found
    assert not missing, f"{len(missing)} acknowledged writes lost: {sorted(missing)[:10]}"
    predicted = load.acknowledged.get("predict", [])
    unlogged = set(predicted) - logged
    assert not unlogged, f"{len(unlogged)} answered predictions not logged: {sorted(unlogged)[:10]}"
    print(f"tag writes acknowledged {len(written)}, found {len(set(written) & found)}")
    print(f"predictions answered {len(predicted)}, logged {len(set(predicted) & logged)}")


def test_redis_stop_and_start_under_online_lookups(tmp_path: Path) -> None:
    with private_redis() as redis:
        database = f"sqlite:///{tmp_path / 'home' / 'meshops.db'}"
        store = {"type": "redis", "url": redis.url, "prefix": "faults:"}
        prepared = prepare(tmp_path / "home", database, online_store=store)
        with meshops_server(prepared.home, prepared.env) as base:
            requests: dict[str, Request] = {"lookup": lookup}
            load, back = _load(base, prepared, requests, partial(_restart_redis, redis))
    _report("redis", load)
    _assert_outage_answered_cleanly(load, expect_kinds={"lookup"})
    _assert_recovered(load, back)


def _load_through(
    base: str, prepared: Prepared, fault: Callable[[float], object]
) -> tuple[Load, list[float]]:
    requests: dict[str, Request] = {
        "write": partial(write_tag, run_id=prepared.run_id),
        "predict": predict,
        "lookup": lookup,
    }
    return _load(base, prepared, requests, fault)


def _load(
    base: str, prepared: Prepared, requests: dict[str, Request], fault: Callable[[float], object]
) -> tuple[Load, list[float]]:
    back: list[float] = []  # when the service answered again

    async def during() -> None:
        await asyncio.sleep(WARM_SECONDS)
        await asyncio.to_thread(fault, OUTAGE_SECONDS)
        back.append(time.monotonic())

    headers = {"authorization": f"Bearer {prepared.token}"}
    rounds = asyncio.run(warm_up(base, headers, requests))
    print(f"\nwarm after {rounds} rounds of concurrent requests")
    load = asyncio.run(
        run_load(
            base,
            headers,
            requests,
            clients=CLIENTS,
            during=during,
            after=AFTER_SECONDS,
        )
    )
    return load, back


def _restart_postgres(postgres: PrivatePostgres, outage: float) -> None:
    postgres.stop("immediate")
    time.sleep(outage)
    postgres.start()


def _restart_redis(redis: PrivateRedis, outage: float) -> None:
    redis.stop()
    time.sleep(outage)
    redis.start()


def _tags_found(base: str, prepared: Prepared) -> set[str]:
    headers = {"authorization": f"Bearer {prepared.token}"}
    answer = httpx.get(f"{base}/v1/runs/{prepared.run_id}", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return set(answer.json()["tags"])


def _report(fault: str, load: Load) -> None:
    print(f"\n{fault}: {len(load.answers)} requests from {CLIENTS} clients")
    for outcome, count in sorted(load.count().items()):
        print(f"  {outcome}: {count}")


def _assert_outage_answered_cleanly(load: Load, expect_kinds: set[str]) -> None:
    unclean = [a for a in load.failures() if not _clean_refusal(a)]
    assert not unclean, f"{len(unclean)} answers were not a clean 503: {unclean[:5]}"
    refused = {a.kind for a in load.failures()}
    assert expect_kinds <= refused, f"the outage was not seen by {expect_kinds - refused}"


def _clean_refusal(answer: Answer) -> bool:
    return (
        answer.status == 503
        and answer.error == "unavailable"
        and answer.retry_after is not None
        and "retry" in answer.message
    )


def _assert_recovered(load: Load, back: list[float]) -> None:
    """Every request sent from some moment after the restart on succeeded; that moment
    came within RECOVERY_LIMIT (the recovery time is printed)."""
    assert back, "the service was not started again"
    last_sent = max(a.sent for a in load.answers)
    tail = load.between(last_sent - HEALTHY_SECONDS, float("inf"))
    failed_tail = [a for a in tail if a.status not in {200, 204}]
    assert not failed_tail, f"still failing at the end: {len(failed_tail)} of {len(tail)}"
    failures_after = [a.sent for a in load.failures() if a.sent >= back[0]]
    recovered = max(failures_after, default=back[0]) - back[0]
    print(f"recovered {recovered:.1f} s after the service was back")
    assert recovered <= RECOVERY_LIMIT, f"recovery took {recovered:.1f} s"
