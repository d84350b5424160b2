"""Who is acting, and the hook every service asks before it acts.

The kernel only defines the question (`Authorizer.check`); the governance area answers it
with roles and bindings. Until a home has governance bindings, the embedded home's
configured local user acts as platform admin (see governance docs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from meshops.kernel.errors import Forbidden

SYSTEM_ACTOR_NAME = "system"


class HomeLike(Protocol):
    """What a hook sees of the home it is installed in (avoids importing home.py)."""

    @property
    def settings(self) -> Any: ...


@dataclass(frozen=True)
class Actor:
    name: str
    kind: Literal["user", "service", "system"] = "user"
    # Scopes of the API token used, if any; None means the actor's full permissions.
    scopes: frozenset[str] | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    # Expiry of the API token used, if any: tokens it creates may not outlive it.
    expires_at: datetime | None = None

    @property
    def urn(self) -> str:
        return f"meshops:user:{self.name}"


SYSTEM = Actor(SYSTEM_ACTOR_NAME, "system")


class Authorizer(Protocol):
    def check(self, actor: Actor, action: str, domain: str | None = None) -> None:
        """Return if `actor` may perform `action` (in `domain`), else raise Forbidden."""


class LocalOwnerAuthorizer:
    """An embedded home belongs to the person who runs it: everything is allowed for the
    configured local user and the system actor; anyone else is refused."""

    def __init__(self, home: HomeLike) -> None:
        self.owner = home.settings.user

    def check(self, actor: Actor, action: str, domain: str | None = None) -> None:
        if actor.kind == "system" or actor.name == self.owner:
            return
        raise Forbidden(
            f"{actor.name} may not {action}",
            {"action": action, "domain": domain, "fix": "ask a platform admin for a role"},
        )
