"""The catalogue of actions services authorise (`ctx.authorize(action, domain)`).

Each area owns its block below. The governance area maps roles to these actions; the
permission table in the docs is generated from it, and tests check every action a service
authorises is listed here.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    # kernel
    "lineage.read": "walk the lineage graph",
    "lineage.write": "record lineage edges by hand",
    # tracking
    "tracking.read": "read experiments, runs, metrics and artifacts",
    "tracking.write": "create experiments and runs, log params, metrics and artifacts",
    # registry
    "registry.read": "read models, versions, aliases and model files",
    "registry.write": "register models and versions, edit tags, descriptions and cards",
    "registry.alias": "move an alias (e.g. champion) to a version",
    "registry.promote": "promote a version to production (gated by model.promote policies)",
    "registry.approve": "approve a version for promotion",
    # mesh
    "domain.read": "read domains and teams",
    "domain.write": "create and edit domains and teams",
    "dataproduct.read_metadata": "see data products, contracts and versions in the catalog",
    "dataproduct.write": "create and edit data product definitions",
    "dataproduct.publish": "build and publish data product versions",
    "dataproduct.lifecycle": "deprecate or retire a data product",
    "dataproduct.read_data": "read a data product's data (needs a grant unless owner)",
    # governance
    "identity.read": "list users, service accounts and role bindings",
    "identity.write": "create users and service accounts, bind roles",
    "token.manage_own": "create and revoke one's own API tokens",
    "policy.read": "read policies and evaluations",
    "policy.write_global": "create or change global policies",
    "policy.write_domain": "create or change a domain's policies",
    "access.request": "request access to a data product port",
    "access.decide": "approve, deny or revoke access to a data product port",
    "audit.read": "read and verify the audit log",
    "usage.read": "read usage of data products",
    "dataproduct.read_any": "read any product data of the domain unmasked, without a grant",
    # features
    "features.read": "read feature definitions and values",
    "features.write": "define entities, feature views and services",
    "features.materialize": "materialize features into the online store",
    # pipelines
    "pipelines.read": "read pipelines, runs and logs",
    "pipelines.run": "run, resume and schedule pipelines",
    "pipelines.write": "define pipelines, schedules and triggers",
    # serving
    "serving.read": "read endpoints and prediction logs",
    "serving.write": "create and change endpoints",
    "serving.predict": "call an endpoint",
    # monitoring
    "monitoring.read": "read monitors, results, reports and alerts",
    "monitoring.write": "create monitors and alert rules, acknowledge alerts",
    "monitoring.feedback": "send ground-truth labels",
    # project (workflow and CI/CD)
    "project.read": "read applied objects (with their git commit) and webhook deliveries",
    "project.plan": "plan and check a project repository against the platform",
    "project.apply": "apply a project repository (record objects with their git commit)",
}
