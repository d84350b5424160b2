"""The home's secret key lives outside the metadata database; one derived key per purpose."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from meshops.kernel import secrets
from meshops.kernel.config import Settings, load_settings
from meshops.kernel.errors import InvalidInput


def _settings(home: Path, extra: dict[str, object] | None = None) -> Settings:
    settings = load_settings(home=home, env={})
    return replace(settings, extra=extra or {})


def test_key_file_is_created_once_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(secrets.ENV_VAR, raising=False)
    settings = _settings(tmp_path / "home")
    first = secrets.derived_key(settings, "audit")
    path = tmp_path / "home" / secrets.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secrets._key_from_file.cache_clear()
    assert secrets.derived_key(settings, "audit") == first
    assert len(first) == 32


def test_purposes_get_different_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(secrets.ENV_VAR, raising=False)
    settings = _settings(tmp_path / "home")
    keys = {secrets.derived_key(settings, p) for p in ("audit", "masking", "session", "csrf")}
    assert len(keys) == 4


def test_environment_key_wins_and_homes_sharing_it_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(secrets.ENV_VAR, "ab" * 32)
    one = secrets.derived_key(_settings(tmp_path / "a"), "masking")
    two = secrets.derived_key(_settings(tmp_path / "b"), "masking")
    assert one == two
    assert not (tmp_path / "a" / secrets.KEY_FILE).exists()


def test_configured_key_file_and_short_key_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(secrets.ENV_VAR, raising=False)
    key_file = tmp_path / "elsewhere" / "key"
    key_file.parent.mkdir()
    key_file.write_text("short\n")
    settings = _settings(tmp_path / "home", {"security": {"secret_key_file": str(key_file)}})
    secrets._key_from_file.cache_clear()
    with pytest.raises(InvalidInput, match="shorter than 32"):
        secrets.derived_key(settings, "audit")
    assert not (tmp_path / "home" / secrets.KEY_FILE).exists()
