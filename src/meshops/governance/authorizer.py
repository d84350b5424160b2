"""The kernel's `Authorizer` answered with roles bound at platform or domain scope.

An action is allowed when the actor is the system actor, or when one of its bindings
(stored, or implicit: everyone is a consumer, the home's configured local user is platform
admin) is at platform scope or at the action's domain and its role allows the action - and,
for a call made with a scoped API token, a token scope matches the action too. A call not
about one domain (`domain=None`) needs a platform-scope binding.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from meshops.governance.identities import cached_bindings, cached_is_disabled
from meshops.governance.models import PLATFORM_SCOPE, RoleBinding
from meshops.governance.roles import PLATFORM_ADMIN, ROLES
from meshops.kernel.auth import Actor, HomeLike
from meshops.kernel.errors import Forbidden


def binding_allows(binding: RoleBinding, action: str, domain: str | None) -> bool:
    in_scope = binding.scope in (PLATFORM_SCOPE, domain)
    role = ROLES.get(binding.role)
    return in_scope and role is not None and role.allows(action)


def scopes_allow(actor: Actor, action: str) -> bool:
    return actor.scopes is None or any(fnmatchcase(action, s) for s in actor.scopes)


class RoleAuthorizer:
    def __init__(self, home: HomeLike) -> None:
        self.home = home

    def allows(self, actor: Actor, action: str, domain: str | None = None) -> bool:
        if actor.kind == "system":
            return True
        if not scopes_allow(actor, action) or cached_is_disabled(self.home, actor.name):
            return False
        bindings = cached_bindings(self.home, actor.name)
        return any(binding_allows(b, action, domain) for b in bindings)

    def check(self, actor: Actor, action: str, domain: str | None = None) -> None:
        if self.allows(actor, action, domain):
            return
        where = f" in domain {domain!r}" if domain else ""
        if not scopes_allow(actor, action):
            raise Forbidden(
                f"the API token used does not allow {action}",
                {"action": action, "fix": "use a token whose scopes include this action"},
            )
        roles = roles_allowing(action)
        example = roles[0] if roles else "<role>"
        scope = f" --domain {domain}" if domain else ""
        raise Forbidden(
            f"{actor.name} may not {action}{where}",
            {
                "action": action,
                "domain": domain,
                "roles": roles,
                "fix": f"ask a platform admin for a role that allows {action}"
                + (f" in domain {domain!r}" if domain else " at platform scope")
                + (f" ({', '.join(roles)})" if roles else "")
                + f": `meshops roles bind {actor.name} {example}{scope}`",
            },
        )


def roles_allowing(action: str) -> list[str]:
    """The roles that allow `action`, the narrowest (fewest actions) first; platform admin
    left out (it allows everything)."""
    found = [r for r in ROLES.values() if r.name != PLATFORM_ADMIN and r.allows(action)]
    return [r.name for r in sorted(found, key=lambda r: len(r.actions()))]
