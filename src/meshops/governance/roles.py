"""Roles: named permission sets over the action catalogue (`kernel/permissions.py`).

A role lists action patterns (`fnmatch` style, e.g. `tracking.*`, `*.read`), so an action
an area adds later to its own block is covered by the roles that already cover the block.
Roles are bound to a principal at platform scope or at one domain's scope
(`authorizer.py`). The permission table in `docs/governance.md` is generated from here
(`permission_table_markdown`) and a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from meshops.kernel.errors import InvalidInput
from meshops.kernel.permissions import ACTIONS


@lru_cache(maxsize=4096)
def _allows(patterns: tuple[str, ...], action: str) -> bool:
    # Asked on every service call: remember the answer per (role patterns, action).
    return any(fnmatchcase(action, pattern) for pattern in patterns)


@dataclass(frozen=True)
class Role:
    name: str
    title: str
    description: str
    patterns: tuple[str, ...]

    def allows(self, action: str) -> bool:
        return _allows(self.patterns, action)

    def actions(self) -> list[str]:
        return [action for action in ACTIONS if self.allows(action)]


# Every authenticated principal is a consumer at platform scope: discovering products and
# asking for access is open to everyone in a mesh; reading data still needs a grant.
IMPLICIT_ROLE = "consumer"
PLATFORM_ADMIN = "platform_admin"

_READ_ALL = ("*.read", "dataproduct.read_metadata")
_SELF_SERVICE = ("token.manage_own", "access.request", "policy.read", "domain.read")

ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(
            "platform_admin",
            "Platform admin",
            "Runs the platform: every action everywhere, including identities and roles.",
            ("*",),
        ),
        Role(
            "governance_member",
            "Governance group member",
            "Sets global policies (which domains cannot weaken), reads audit and usage "
            "everywhere; does not read data without a grant.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "policy.write_global",
                "policy.write_domain",
                "audit.read",
                "usage.read",
                "dataproduct.read_data",
            ),
        ),
        Role(
            "domain_owner",
            "Domain owner",
            "Owns a domain: its teams, products, policies and access decisions; reads its "
            "products' data unmasked.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "domain.write",
                "dataproduct.*",
                "access.decide",
                "policy.write_domain",
                "audit.read",
                "usage.read",
                "pipelines.*",
                "features.*",
                "lineage.write",
            ),
        ),
        Role(
            "data_product_owner",
            "Data product owner",
            "Owns data products: defines, publishes and retires them, decides access, sees "
            "their usage; reads their data unmasked.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "dataproduct.*",
                "access.decide",
                "usage.read",
                "pipelines.*",
                "lineage.write",
            ),
        ),
        Role(
            "consumer",
            "Consumer",
            "Discovers products, requests access with a purpose and reads what it is "
            "granted (every principal has this role at platform scope).",
            (
                *_SELF_SERVICE,
                "dataproduct.read_metadata",
                "dataproduct.read_data",
                "lineage.read",
            ),
        ),
        Role(
            "business_stakeholder",
            "Business stakeholder",
            "Reads results, reports and monitoring; signs off model versions for promotion.",
            (*_READ_ALL, *_SELF_SERVICE, "registry.approve", "dataproduct.read_data"),
        ),
        Role(
            "solution_architect",
            "Solution architect",
            "Designs the system: reads everything, defines pipelines and lineage, reads "
            "audit and usage.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "dataproduct.read_data",
                "pipelines.write",
                "lineage.write",
                "audit.read",
                "usage.read",
            ),
        ),
        Role(
            "data_scientist",
            "Data scientist",
            "Explores granted data, defines features, tracks experiments and registers "
            "models; cannot promote to production.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "dataproduct.read_data",
                "tracking.*",
                "registry.write",
                "features.write",
                "pipelines.run",
            ),
        ),
        Role(
            "data_engineer",
            "Data engineer",
            "Builds and publishes data products and their pipelines and features.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "dataproduct.read_data",
                "dataproduct.write",
                "dataproduct.publish",
                "features.*",
                "pipelines.*",
                "lineage.write",
            ),
        ),
        Role(
            "software_engineer",
            "Software engineer",
            "Integrates models into applications: endpoints and predictions.",
            (*_READ_ALL, *_SELF_SERVICE, "serving.*"),
        ),
        Role(
            "devops_engineer",
            "DevOps engineer",
            "Operates pipelines, serving, monitoring and materialization; reads audit.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "pipelines.*",
                "serving.*",
                "monitoring.*",
                "features.materialize",
                "audit.read",
            ),
        ),
        Role(
            "ml_engineer",
            "ML engineer",
            "Takes models to production: tracking, registry (promotion and aliases, but not "
            "the business approval), features, pipelines, serving and monitoring.",
            (
                *_READ_ALL,
                *_SELF_SERVICE,
                "dataproduct.read_data",
                "tracking.*",
                "registry.read",
                "registry.write",
                "registry.alias",
                "registry.promote",
                "features.*",
                "pipelines.*",
                "serving.*",
                "monitoring.*",
                "lineage.write",
            ),
        ),
    )
}


def get_role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown role {name!r}",
            {"field": "role", "known": sorted(ROLES), "fix": "use `meshops roles list`"},
        ) from None


def permission_table_markdown() -> str:
    """The role × action table of the docs (✓ = allowed), generated from `ROLES`."""
    names = list(ROLES)
    header = "| action | " + " | ".join(names) + " |"
    rule = "| --- | " + " | ".join("---" for _ in names) + " |"
    rows = [
        f"| `{action}` | "
        + " | ".join("✓" if ROLES[n].allows(action) else "" for n in names)
        + " |"
        for action in ACTIONS
    ]
    return "\n".join([header, rule, *rows])


TABLE_START, TABLE_END = "<!-- permission-table -->", "<!-- /permission-table -->"


def write_permission_table(path: str) -> bool:
    """Regenerate the table between the markers of a docs page; True if it changed.

    Run `python -m meshops.governance.roles docs/governance.md` after adding an action."""
    from pathlib import Path

    page = Path(path)
    text = page.read_text()
    before, _, rest = text.partition(TABLE_START)
    _, _, after = rest.partition(TABLE_END)
    updated = f"{before}{TABLE_START}\n{permission_table_markdown()}\n{TABLE_END}{after}"
    if updated != text:
        page.write_text(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    for target in sys.argv[1:] or ["docs/governance.md"]:
        print(f"{target}: {'updated' if write_permission_table(target) else 'up to date'}")
