"""Homes whose Iceberg ports live in a local folder warehouse (SQLite catalog) or on a real
S3-compatible server (moto) with the PostgreSQL catalog, and the documents of a product
with one Iceberg output port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meshops.client import Platform
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.support.products import data_contract, data_product


def _s3_bucket(endpoint: str, name: str) -> dict[str, Any]:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }


@pytest.fixture(params=["local-sqlite", "s3-postgres"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    if request.param == "local-sqlite":
        settings = make_settings(tmp_path / "home")
    else:
        url = request.getfixturevalue("postgres_url")
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = f"ice{abs(hash(str(tmp_path))) % 10**8}"
        options = _s3_bucket(endpoint, bucket)
        settings = replace(
            make_settings(tmp_path / "home", url),
            blob_url=f"s3://{bucket}/meshops",
            blob_options=options,
        )
    h = Home(settings)
    yield h
    h.close()


@pytest.fixture
def platform(home: Home) -> Iterator[Platform]:
    p = Platform(home.settings, home=home)
    yield p
    p.close()


def iceberg_port(descriptor: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """The descriptor with its (only) output port stored as Iceberg, plus `properties`."""
    custom = [{"property": "meshops.format", "value": "iceberg"}]
    custom += [{"property": f"meshops.{k}", "value": v} for k, v in properties.items()]
    descriptor["outputPorts"][0]["customProperties"] = custom
    return descriptor


def events_contract(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    properties = [
        {"name": "event_id", "logicalType": "integer", "required": True},
        {"name": "region", "logicalType": "string"},
        {"name": "amount", "logicalType": "number"},
    ]
    return data_contract("shop-events", "events", properties + (extra or []))


def events_descriptor(version: str, *, iceberg: bool = True, **props: Any) -> dict[str, Any]:
    descriptor = data_product("shop.events", "shop-events", version=version)
    return iceberg_port(descriptor, **props) if iceberg else descriptor
