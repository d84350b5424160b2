"""The home's secret key: kept outside the metadata database, one key per purpose derived from it.

Whoever can write the metadata database (a leaked backup, a compromised replica, an operator
with SQL access) must not be able to forge the audit chain, reverse `hash` masking by
hashing guesses, or mint web sessions. So the keys behind those live elsewhere:

1. `MESHOPS_SECRET_KEY` (hex or any string of 32+ characters) in the environment, which is
   how a server, its workers and its serving processes on several hosts share one key; else
2. `[security] secret_key_file` in `meshops.toml`; else
3. `<home>/secret.key`, created with 32 random bytes and mode 0600 on first use.

Each purpose gets its own key, HMAC-SHA256(master, purpose), so that knowing one derived
key (say, a session key in memory) says nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from meshops.kernel.config import Settings
from meshops.kernel.errors import InvalidInput

Purpose = Literal["audit", "masking", "session", "csrf"]

ENV_VAR = "MESHOPS_SECRET_KEY"
KEY_FILE = "secret.key"
MIN_LENGTH = 32


def secret_key_path(settings: Settings) -> Path:
    configured = settings.section("security").get("secret_key_file")
    return Path(configured).expanduser() if configured else settings.home / KEY_FILE


def derived_key(settings: Settings, purpose: Purpose) -> bytes:
    """The key for one purpose (32 bytes), stable for the home as long as its master is."""
    return hmac.new(master_key(settings), purpose.encode(), hashlib.sha256).digest()


def master_key(settings: Settings) -> bytes:
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _parse_key(from_env, ENV_VAR)
    return _key_from_file(secret_key_path(settings).resolve())


@lru_cache(maxsize=16)
def _key_from_file(path: Path) -> bytes:
    try:
        return _parse_key(path.read_text().strip(), str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    try:
        # O_EXCL: two processes opening a new home at once agree on whichever key won.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse_key(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as fh:
        fh.write(fresh + "\n")
    return bytes.fromhex(fresh)


def _parse_key(text: str, source: str) -> bytes:
    if len(text) < MIN_LENGTH:
        raise InvalidInput(
            f"the secret key in {source} is shorter than {MIN_LENGTH} characters",
            {
                "source": source,
                "fix": "use e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`",
            },
        )
    try:
        return bytes.fromhex(text)
    except ValueError:
        return hashlib.sha256(text.encode()).digest()
