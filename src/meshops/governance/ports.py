"""The governance area's side of the kernel's ports (bound by `meshops.assembly`): the
policy enforcer other areas ask before they write, value masking for the online path, the
default authorizer and read guard, and the API token authenticator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshops.kernel.ports import PolicyNote

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.kernel.access import MaskMethod, ReadGuard
    from meshops.kernel.auth import Authorizer
    from meshops.kernel.home import Context, Home


class GovernancePolicyEnforcer:
    def enforce(
        self, ctx: Context, target: str, document: dict[str, Any], domain: str | None, urn: str
    ) -> list[PolicyNote]:
        from meshops.governance.policy_service import PolicyService

        decision = PolicyService(ctx).enforce(target, document, domain, urn)
        return [PolicyNote(w.policy_id, w.explanation) for w in decision.warnings]

    def fingerprint(self, ctx: Context, target: str) -> tuple[Any, ...]:
        from meshops.governance.policy_service import PolicyService

        # Read as the system: which policies apply is not the caller's secret to keep.
        policies = PolicyService(ctx.home.system_context()).list_policies(target)
        return tuple((p.id, p.scope, p.version, p.updated_at) for p in policies)


class GovernanceValueMasker:
    def key(self, home: Home) -> bytes:
        from meshops.governance.masking import masking_key

        return masking_key(home.settings)

    def mask(
        self, values: list[Any], method: MaskMethod, key: bytes, value_type: pa.DataType
    ) -> list[Any]:
        from meshops.governance.masking import mask_values

        return mask_values(values, method, key, value_type)


class GovernanceAccessHooks:
    def authorizer(self, home: Home) -> Authorizer:
        from meshops.governance.authorizer import RoleAuthorizer

        return RoleAuthorizer(home)

    def read_guard(self, home: Home) -> ReadGuard:
        from meshops.governance.guard import GovernedReadGuard

        return GovernedReadGuard(home)
