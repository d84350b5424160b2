from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshops.kernel.config import load_settings
from meshops.kernel.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MeshopsError,
    NotFound,
    Unauthenticated,
    error_from_json,
)
from meshops.kernel.urn import Urn


def test_settings_defaults_follow_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h", env={})
    assert s.database_url.endswith("h/meshops.db")
    assert s.blob_url == str(tmp_path / "h" / "blobs")
    assert not s.is_remote


def test_settings_environment_and_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "meshops.toml"
    cfg.write_text(
        '[platform]\nuser = "bob"\n[database]\nurl = "sqlite:///x.db"\n'
        '[features]\nonline = "redis"\n'
    )
    s = load_settings(env={"MESHOPS_HOME": str(tmp_path), "MESHOPS_CONFIG": str(cfg)})
    assert s.user == "bob"
    assert s.database_url == "sqlite:///x.db"
    assert s.section("features") == {"online": "redis"}
    env = {"MESHOPS_CONFIG": str(cfg), "MESHOPS_USER": "carol", "MESHOPS_URI": "http://h:1"}
    s = load_settings(env=env)
    assert s.user == "carol"
    assert s.is_remote


def test_settings_uri_naming_a_directory_is_an_embedded_home(tmp_path: Path) -> None:
    s = load_settings(uri=str(tmp_path / "elsewhere"), env={})
    assert s.home == tmp_path / "elsewhere"
    assert not s.is_remote


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "meshops.toml"
    cfg.write_text("[platform\nuser=1")
    with pytest.raises(InvalidInput) as info:
        load_settings(env={"MESHOPS_CONFIG": str(cfg)})
    assert str(cfg) in info.value.message


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (InvalidInput, 422),
        (NotFound, 404),
        (Conflict, 409),
        (Unauthenticated, 401),
        (Forbidden, 403),
    ],
)
def test_errors_round_trip_through_json(cls: type[MeshopsError], status: int) -> None:
    err = cls("boom", {"field": "x"})
    assert err.http_status == status
    back = error_from_json(status, err.to_json())
    assert type(back) is cls
    assert back.message == "boom"
    assert back.detail == {"field": "x"}


def test_unknown_error_body_maps_by_status() -> None:
    assert isinstance(error_from_json(404, "nope"), NotFound)
    assert isinstance(error_from_json(400, None), InvalidInput)


part = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="._-"),
    min_size=1,
    max_size=20,
).filter(lambda s: s.isascii())


@given(
    st.sampled_from(["run", "model", "dataproduct", "featureview"]),
    st.lists(part, min_size=1, max_size=3),
)
def test_urn_round_trip(kind: str, parts: list[str]) -> None:
    urn = Urn.of(kind, *parts)
    assert Urn.parse(str(urn)) == urn


@pytest.mark.parametrize("bad", ["run:1", "meshops:nokind:1", "meshops:run:", "meshops:run:a b"])
def test_bad_urns_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        Urn.parse(bad)
