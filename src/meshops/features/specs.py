"""Feature definitions in YAML files of the user's repository (`features/*.yaml`).

```yaml
entities:
  - name: customer
    join_keys: [customer_id]
feature_views:
  - name: customer_stats
    entities: [customer]
    source: {product: sales.customer_stats, port: stats}   # or "sales.customer_stats"
    event_time: event_timestamp
    created_time: created_at            # optional: breaks ties between equal event times
    ttl: 30d
    owner: alice
    tags: {team: growth}
    features:
      - {name: orders_7d, type: int64, description: orders in the last 7 days}
on_demand_features:
  - {name: amount_ratio, function: mypkg.features:amount_ratio, type: float64,
     inputs: ["customer_stats:avg_amount"], request: [amount]}
feature_services:
  - {name: churn_model, features: ["customer_stats:*", amount_ratio]}
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from meshops.features.models import (
    Entity,
    FeatureRepo,
    FeatureServiceDef,
    FeatureView,
    OnDemandFeature,
    SourceRef,
    parse_duration,
)
from meshops.kernel.bounds import load_bounded_yaml
from meshops.kernel.errors import InvalidInput, MeshopsError

SECTIONS: dict[str, type[BaseModel]] = {
    "entities": Entity,
    "feature_views": FeatureView,
    "on_demand_features": OnDemandFeature,
    "feature_services": FeatureServiceDef,
}
KIND_OF_SECTION = {
    "entities": "entity",
    "feature_views": "feature_view",
    "on_demand_features": "on_demand_feature",
    "feature_services": "feature_service",
}


def _view_document(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """YAML conveniences: `source` as a string, `ttl` as a duration, tags as a list."""
    doc = dict(doc)
    source = doc.get("source")
    if isinstance(source, str):
        product, _, version = source.partition("@")
        product, _, port = product.partition(":")
        doc["source"] = {"product": product, "port": port or None, "version": version or None}
    if "ttl" in doc:
        doc["ttl_seconds"] = parse_duration(doc.pop("ttl"), "ttl")
    if isinstance(doc.get("tags"), list):
        doc["tags"] = {str(t): "" for t in doc["tags"]}
    if isinstance(doc.get("source"), dict):
        SourceRef.model_validate(doc["source"])
    return doc


def parse_document(data: Any, file: str = "<python>") -> FeatureRepo:
    """A repository from one parsed YAML/JSON document."""
    if data is None:
        return FeatureRepo()
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{file}: a features file is a mapping of sections",
            {"file": file, "fix": f"use top-level keys {sorted(SECTIONS)}"},
        )
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InvalidInput(
            f"{file}: unknown section(s) {unknown}",
            {"file": file, "field": unknown[0], "fix": f"use {sorted(SECTIONS)}"},
        )
    repo = FeatureRepo()
    for section, model in SECTIONS.items():
        items = data.get(section) or []
        if not isinstance(items, list):
            raise InvalidInput(
                f"{file}: {section} must be a list", {"file": file, "field": section}
            )
        for index, item in enumerate(items):
            where = f"{section}[{index}]"
            if not isinstance(item, dict):
                raise InvalidInput(
                    f"{file}: {where} must be a mapping", {"file": file, "field": where}
                )
            try:
                doc = _view_document(item, where) if section == "feature_views" else item
                obj = model.model_validate(doc)
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join([where, *(str(p) for p in first["loc"])])
                cause = first.get("ctx", {}).get("error")
                message = cause.message if isinstance(cause, MeshopsError) else first["msg"]
                raise InvalidInput(
                    f"{file}: {field}: {message}",
                    {"file": file, "field": field, "fix": _fix_for(section, first)},
                ) from exc
            except MeshopsError as exc:
                raise InvalidInput(
                    f"{file}: {where}: {exc.message}",
                    {**exc.detail, "file": file, "field": f"{where}.{exc.detail.get('field', '')}"},
                ) from exc
            getattr(repo, section).append(obj)
            repo.origins[f"{KIND_OF_SECTION[section]}:{obj.__dict__['name']}"] = f"{file}#{where}"
    return repo


def _fix_for(section: str, error: Any) -> str:
    if error["type"] == "missing":
        return f"add the field {error['loc'][-1]!r} (see docs/features.md for {section})"
    if error["type"] == "literal_error":
        return f"use one of {error.get('ctx', {}).get('expected', '')}"
    return "correct the value (see docs/features.md)"


def load_file(path: str | Path) -> FeatureRepo:
    path = Path(path)
    try:
        data = load_bounded_yaml(path.read_text(), str(path))  # depth and aliases bounded
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InvalidInput(
            f"{path}: not valid YAML: {exc}",
            {"file": str(path), "line": mark.line + 1 if mark else None, "fix": "fix the syntax"},
        ) from exc
    return parse_document(data, str(path))


def load_repo(path: str | Path = "features") -> FeatureRepo:
    """All definitions of a folder's `*.yaml`/`*.yml` files (or of one file)."""
    path = Path(path)
    if path.is_file():
        return load_file(path)
    if not path.is_dir():
        raise InvalidInput(
            f"no feature definitions at {path}",
            {"file": str(path), "fix": "create features/*.yaml or pass the folder"},
        )
    merged = FeatureRepo()
    for file in sorted([*path.glob("*.yaml"), *path.glob("*.yml")]):
        repo = load_file(file)
        for section in SECTIONS:
            getattr(merged, section).extend(getattr(repo, section))
        merged.origins.update(repo.origins)
    return merged
