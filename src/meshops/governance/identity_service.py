"""Identities, role bindings and API tokens: who may call, and as whom."""

from __future__ import annotations

from meshops.governance import identities, tokens
from meshops.governance.models import (
    PLATFORM_SCOPE,
    CreatedToken,
    Principal,
    RoleBinding,
    TokenInfo,
    Whoami,
)
from meshops.governance.roles import ROLES, Role
from meshops.governance.service_base import ServiceBase, days_of
from meshops.kernel.db import utcnow
from meshops.kernel.errors import NotFound


class IdentityService(ServiceBase):
    """Users and service accounts, their roles, and their tokens."""

    def refresh_caches(self) -> None:
        """Forget this process's cached identities and bindings (e.g. after a rolled-back
        unit of work whose uncommitted writes they may have read)."""
        identities.invalidate(self.ctx.home)

    # ------------------------------------------------------------------ identities
    def whoami(self) -> Whoami:
        """Who the caller is (any authenticated caller may ask about itself)."""
        actor = self.ctx.actor
        return Whoami(
            name=actor.name,
            kind=actor.kind,
            scopes=sorted(actor.scopes) if actor.scopes is not None else None,
            bindings=identities.cached_bindings(self.ctx.home, actor.name),
        )

    def create_user(self, name: str, display_name: str = "", email: str = "") -> Principal:
        return self._create_principal(name, "user", display_name, email, None)

    def create_service_account(
        self, name: str, owner: str | None = None, display_name: str = ""
    ) -> Principal:
        return self._create_principal(
            name, "service", display_name, "", owner or self.ctx.actor.name
        )

    def _create_principal(
        self, name: str, kind: str, display_name: str, email: str, owner: str | None
    ) -> Principal:
        self.ctx.authorize("identity.write")
        identities.check_name(name)
        principal = Principal.model_validate(
            {
                "name": name,
                "kind": kind,
                "display_name": display_name or name,
                "email": email,
                "owner": owner,
                "created_at": utcnow(),
                "created_by": self.ctx.actor.name,
            }
        )
        with self.ctx.db.begin() as conn:
            identities.insert_principal(conn, principal)
            self.ctx.audit(conn, f"{kind}.create", f"meshops:user:{name}", after=principal)
        self._changed_identities()
        return principal

    def list_users(self) -> list[Principal]:
        self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            return identities.list_principals(conn)

    def set_disabled(self, name: str, disabled: bool) -> Principal:
        """Disable (or re-enable) a principal: its tokens stop working at once."""
        self.ctx.authorize("identity.write")
        with self.ctx.db.begin() as conn:
            before = identities.require_principal(conn, name)
            from meshops.governance.store import principals

            conn.execute(
                principals.update().where(principals.c.name == name).values(disabled=disabled)
            )
            after = before.model_copy(update={"disabled": disabled})
            action = "user.disable" if disabled else "user.enable"
            self.ctx.audit(conn, action, f"meshops:user:{name}", before=before, after=after)
        self._changed_identities()
        return after

    def list_roles(self) -> list[Role]:
        """The role catalogue (static, documented; readable by everyone)."""
        return list(ROLES.values())

    def bind_role(self, principal: str, role: str, domain: str | None = None) -> RoleBinding:
        self.ctx.authorize("identity.write", domain)
        binding = RoleBinding(principal=principal, role=role, scope=domain or PLATFORM_SCOPE)
        with self.ctx.db.begin() as conn:
            identities.require_principal(conn, principal)
            stored = identities.add_binding(conn, binding, self.ctx.actor.name)
            self.ctx.audit(conn, "role.bind", f"meshops:user:{principal}", after=stored)
        self._changed_identities()
        return stored

    def unbind_role(self, principal: str, role: str, domain: str | None = None) -> None:
        self.ctx.authorize("identity.write", domain)
        binding = RoleBinding(principal=principal, role=role, scope=domain or PLATFORM_SCOPE)
        with self.ctx.db.begin() as conn:
            if not identities.remove_binding(conn, binding):
                raise NotFound(
                    f"{principal} has no role {role} at {binding.scope} scope",
                    {"fix": "list bindings with `meshops roles bindings`"},
                )
            self.ctx.audit(conn, "role.unbind", f"meshops:user:{principal}", before=binding)
        self._changed_identities()

    def list_bindings(self, principal: str | None = None) -> list[RoleBinding]:
        if principal != self.ctx.actor.name:
            self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            found = identities.stored_bindings(conn, principal)
        names = [principal] if principal else sorted({b.principal for b in found})
        for name in names:
            found += identities.implicit_bindings(name, self.ctx.home.settings.user)
        if principal is None and self.ctx.home.settings.user not in names:
            found += identities.implicit_bindings(
                self.ctx.home.settings.user, self.ctx.home.settings.user
            )
        return found

    # ------------------------------------------------------------------ tokens
    def create_token(
        self,
        name: str,
        principal: str | None = None,
        scopes: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> CreatedToken:
        """Make an API token; the secret is in the result and never shown again."""
        owner = principal or self.ctx.actor.name
        own = owner == self.ctx.actor.name
        self.ctx.authorize("token.manage_own" if own else "identity.write")
        expires_in = days_of(expires_in_days, "expires_in_days")
        scopes, expires_in = tokens.within_caller(self.ctx.actor, scopes, expires_in, utcnow())
        with self.ctx.db.begin() as conn:
            if own:
                identities.ensure_principal(conn, owner, self.ctx.actor.name)
            else:
                identities.require_principal(conn, owner)
            secret, info = tokens.create(
                conn, owner, name, scopes, expires_in, not_after=self.ctx.actor.expires_at
            )
            self.ctx.audit(conn, "token.create", f"meshops:user:{owner}", after=info)
        return CreatedToken(token=secret, info=info)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        """One's own tokens; with identity.read, anyone's (`principal=None`: everyone's)."""
        if principal == self.ctx.actor.name:
            self.ctx.authorize("token.manage_own")
        elif principal is None and not self._can("identity.read"):
            principal = self.ctx.actor.name
        else:
            self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            return tokens.list_for(conn, principal)

    def revoke_token(self, token_id: str) -> TokenInfo:
        with self.ctx.db.begin() as conn:
            info = tokens.get(conn, token_id)
            own = info.principal == self.ctx.actor.name
            self.ctx.authorize("token.manage_own" if own else "identity.write")
            if info.revoked_at is None:
                tokens.revoke(conn, token_id, utcnow())
                from meshops.governance.sessions import end_for_token

                end_for_token(conn, token_id)  # its web sessions end with it
            after = tokens.get(conn, token_id)
            self.ctx.audit(conn, "token.revoke", f"meshops:user:{info.principal}", after=after)
        self._changed_identities()
        return after
