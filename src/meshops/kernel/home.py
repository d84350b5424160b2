"""A home: the database, blob store and settings that services run against."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from meshops.kernel import audit, schema, steps
from meshops.kernel.access import ReadGuard
from meshops.kernel.auth import SYSTEM, Actor, Authorizer
from meshops.kernel.config import Settings
from meshops.kernel.db import Database
from meshops.kernel.plugins import load_object
from meshops.kernel.ports import ACCESS_HOOKS
from meshops.kernel.secrets import derived_key

if TYPE_CHECKING:
    from meshops.kernel.blobs import BlobStore

log = logging.getLogger(__name__)


class Home:
    """Opened once per process (embedded SDK, server, worker) and shared by all services."""

    def __init__(self, settings: Settings, *, auto_upgrade: bool = True) -> None:
        self.settings = settings
        self._on_close: list[Callable[[], None]] = []
        if settings.database_url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.database_url)
        schema.ensure_current(self.db, auto_upgrade=auto_upgrade)
        # Named in settings (kernel/plugins.py), else the wired defaults (kernel/ports.py).
        self.authorizer: Authorizer = (
            load_object(settings.authorizer)(self)
            if settings.authorizer
            else ACCESS_HOOKS.get().authorizer(self)
        )
        self.read_guard: ReadGuard = (
            load_object(settings.read_guard)(self)
            if settings.read_guard
            else ACCESS_HOOKS.get().read_guard(self)
        )

    @cached_property
    def blobs(self) -> BlobStore:
        # Opened on first use: fsspec costs ~0.1 s to import, and most CLI commands
        # (catalog search, listings) never touch a blob.
        from meshops.kernel.blobs import BlobStore

        return BlobStore(self.settings.blob_url, self.settings.blob_options)

    def context(self, actor: Actor | None = None) -> Context:
        # A pipeline step run by a worker acts as the run's submitter (`run_as`), with that
        # principal's own bindings and grants, not as the home's user (its implicit admin).
        return Context(self, actor or Actor(self.settings.run_as or self.settings.user))

    def system_context(self) -> Context:
        return Context(self, SYSTEM)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the home closes, before its database: what an area started
        on this home (serving's watcher and log threads) stops with it rather than going on
        against a database that is gone."""
        self._on_close.append(callback)

    def close(self) -> None:
        callbacks, self._on_close = self._on_close, []
        for callback in reversed(callbacks):
            try:
                callback()
            except Exception:
                log.exception("closing %s failed", callback)
        self.db.dispose()


@dataclass(frozen=True)
class Context:
    """What a service call runs with: where (home) and as whom (actor)."""

    home: Home
    actor: Actor

    @property
    def db(self) -> Database:
        return self.home.db

    @property
    def blobs(self) -> BlobStore:
        return self.home.blobs

    def authorize(self, action: str, domain: str | None = None) -> None:
        self.home.authorizer.check(self.actor, action, domain)

    def audit(
        self,
        conn: Connection,
        action: str,
        obj: str,
        *,
        before: Any = None,
        after: Any = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        key = derived_key(self.home.settings, "audit")
        audit.record(
            conn, self.actor.name, action, obj, key=key, before=before, after=after, detail=detail
        )

    def link_to_step(self, conn: Connection, urn: str, relation: str = "produced") -> bool:
        """Inside a pipeline step, link the object `urn` this call creates (or, with
        `consumed`, reads) to the step run and thereby its pipeline run, in `conn`'s
        transaction: every area calls it where it creates an object, so any hand-written
        pipeline keeps unbroken lineage. The step is the process's own in-process (set by
        the executor) and, on the API server, the one the request came from, verified
        against the run (`api/deps.py`). Outside a step it does nothing (returns False)."""
        return steps.link(conn, urn, relation)
