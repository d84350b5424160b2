"""Shared by the Feast peer scripts (B3, B4): a Feast repository configured in code, with
its file offline store and SQLite online store, over the benchmark's Parquet files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64


def feature_store(folder: Path) -> FeatureStore:
    folder.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project="bench",
        registry=str(folder / "registry.db"),
        provider="local",
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": str(folder / "online.db")},
        entity_key_serialization_version=3,
    )
    return FeatureStore(config=config)


def define(
    store: FeatureStore, views: list[tuple[str, Path, list[str]]], ttl_days: int
) -> list[FeatureView]:
    entity = Entity(name="entity", join_keys=["entity_id"])
    feature_views = [
        FeatureView(
            name=name,
            entities=[entity],
            ttl=timedelta(days=ttl_days),
            schema=[Field(name="entity_id", dtype=Int64)]
            + [Field(name=f, dtype=Float64) for f in features],
            source=FileSource(path=str(path), timestamp_field="event_timestamp"),
            online=True,
        )
        for name, path, features in views
    ]
    store.apply([entity, *feature_views])
    return feature_views
