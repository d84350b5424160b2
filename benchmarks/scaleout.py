"""The scale-out set-up of B1 and B4 (#20): a home whose metadata store is PostgreSQL and
whose online store is Redis, `meshops server --workers N` on it with its access log in
JSON, and the outcome of every request the server answered, read back from that log.

The benchmark owns one PostgreSQL database (dropped and created again on each run) and one
key prefix in one Redis database, so it never touches what tests or other benchmarks use.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from b1_metric_logging import MESHOPS, _wait_http, free_port_number, stop_group

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PG_DATABASE = "h7_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
REDIS_PREFIX = "meshops-bench:"
# Path segments that are ids (runs, tokens...) are counted as one route.
_ID_SEGMENT = re.compile(r"^[0-9a-f]{16,}$|^[0-9a-f-]{32,}$")


def fresh_postgres_database(name: str) -> str:
    """Drop and create the benchmark's own database; returns its SQLAlchemy URL."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"--pg-database {name!r}: use lower-case letters, digits and _")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def clear_redis_prefix(redis_url: str) -> int:
    """Delete the benchmark's keys (its prefix only); returns how many there were."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{REDIS_PREFIX}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


@dataclass(frozen=True)
class BenchHome:
    home: Path
    env: dict[str, str]  # MESHOPS_HOME and MESHOPS_CONFIG, for the server and clients

    @contextmanager
    def configured(self) -> Iterator[None]:
        """This process's embedded `connect()` reads this home's configuration meanwhile."""
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def create_token(self) -> str:
        from meshops.client import connect

        with self.configured(), connect(home=self.home) as owner:
            return owner.governance.create_token("bench").token


def bench_home(home: Path, database_url: str = "", redis_url: str = "") -> BenchHome:
    """A home with its own meshops.toml: PostgreSQL and Redis when given, else the
    embedded defaults (SQLite, SQLite online store)."""
    home.mkdir(parents=True)
    config = home / "meshops.toml"
    text = f'[database]\nurl = "{database_url}"\n\n' if database_url else ""
    if redis_url:
        text += (
            f'[features.online_store]\ntype = "redis"\nurl = "{redis_url}"\n'
            f'prefix = "{REDIS_PREFIX}"\n'
        )
    config.write_text(text)
    return BenchHome(home, {"MESHOPS_HOME": str(home), "MESHOPS_CONFIG": str(config)})


@dataclass(frozen=True)
class Server:
    url: str
    group: int  # the process group: the server and its workers
    log: Path

    def log_offset(self) -> int:
        return self.log.stat().st_size

    def outcomes(self, since: int = 0) -> Counter[str]:
        """Requests answered since the log offset `since`, by "METHOD route status"."""
        counts: Counter[str] = Counter()
        with self.log.open("rb") as fh:
            fh.seek(since)
            for raw in fh:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # a traceback's line: the errors are counted by their status
                if line.get("logger") != "meshops.access":
                    continue
                route = "/".join(
                    "{id}" if _ID_SEGMENT.match(part) else part
                    for part in str(line["path"]).split("/")
                )
                counts[f"{line['method']} {route} {line['status']}"] += 1
        return counts


@contextmanager
def meshops_server(env: dict[str, str], workers: int, log: Path) -> Iterator[Server]:
    """`meshops server --workers N --log-format json`, its log (access lines) in `log`."""
    port = free_port_number()
    full_env = {**os.environ, **env}
    full_env.pop("MESHOPS_URI", None)
    command = [str(MESHOPS), "server", "--port", str(port), "--workers", str(workers)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*command, "--log-format", "json"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/readyz", proc)
        yield Server(url, proc.pid, log)
    finally:
        stop_group(proc)


def failures(outcomes: Counter[str]) -> dict[str, int]:
    """The answers that were not 2xx, by route and status."""
    return {k: v for k, v in outcomes.items() if not k.rsplit(" ", 1)[1].startswith("2")}


def describe(outcomes: Counter[str]) -> str:
    return ", ".join(f"{key} × {count:,}" for key, count in sorted(outcomes.items()))
