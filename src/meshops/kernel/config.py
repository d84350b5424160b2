"""Settings: the one place that reads environment variables and `meshops.toml`.

Precedence (highest first): explicit arguments, environment (`MESHOPS_*`), `meshops.toml`
(in the working directory, else in the home), built-in defaults.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshops.kernel.errors import InvalidInput

DEFAULT_HOME = ".meshops"
CONFIG_FILE = "meshops.toml"
# The home's authorizer and read guard: empty means the ones wired to the kernel's
# ACCESS_HOOKS port (the governance area's); `[governance] authorizer`/`read_guard` in
# meshops.toml name others as "package.module:Class" (kernel/plugins.py).
DEFAULT_AUTHORIZER = ""
DEFAULT_READ_GUARD = ""
# Request bodies: JSON and other bodies (a predict batch of 10,000 wide records fits), and
# multipart uploads (model files, artifacts, monitor tables). Larger ones get 413.
DEFAULT_MAX_REQUEST_MB = 64.0
DEFAULT_MAX_UPLOAD_MB = 512.0
# `meshops server`'s log lines: "text" for a terminal, "json" (one object a line) for a
# log collector.
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    home: Path
    uri: str | None = None
    database_url: str = ""
    blob_url: str = ""
    blob_options: dict[str, Any] = field(default_factory=dict)
    user: str = "local"
    # Whom an embedded platform acts as when not the home's user: set (MESHOPS_RUN_AS) by a
    # worker for the steps of a run, to the run's submitter. Never the home's admin.
    run_as: str | None = None
    token: str | None = None
    server_host: str = "127.0.0.1"
    server_port: int = 8080
    max_request_mb: float = DEFAULT_MAX_REQUEST_MB
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    # "host:port" where `meshops server` also answers /metrics without a token (an internal
    # listener for Prometheus); empty: /metrics only on the API port, with a token.
    metrics_address: str = ""
    log_format: str = "text"
    config_file: Path | None = None
    authorizer: str = DEFAULT_AUTHORIZER
    read_guard: str = DEFAULT_READ_GUARD
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        return bool(self.uri) and str(self.uri).startswith(("http://", "https://"))

    def section(self, name: str) -> dict[str, Any]:
        """A table of `meshops.toml` that an area reads for itself (e.g. `[features]`)."""
        value = self.extra.get(name, {})
        return value if isinstance(value, dict) else {}


def _default_database_url(home: Path) -> str:
    return f"sqlite:///{home.resolve() / 'meshops.db'}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path}: {exc}", {"file": str(path), "fix": "correct the TOML syntax"}
        ) from exc


def _find_config(home: Path, env: dict[str, str]) -> Path | None:
    if env.get("MESHOPS_CONFIG"):
        return Path(env["MESHOPS_CONFIG"])
    for candidate in (Path.cwd() / CONFIG_FILE, home / CONFIG_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    uri: str | None = None, home: str | Path | None = None, env: dict[str, str] | None = None
) -> Settings:
    """Build the settings from arguments, environment and `meshops.toml`."""
    env = dict(os.environ) if env is None else env
    uri = uri if uri is not None else env.get("MESHOPS_URI") or None
    if uri and not uri.startswith(("http://", "https://")) and home is None:
        # A URI that is not HTTP names an embedded home directory.
        home = uri.removeprefix("file://")
        uri = None
    home_path = Path(home or env.get("MESHOPS_HOME") or DEFAULT_HOME).expanduser()
    config_path = _find_config(home_path, env)
    data = _read_toml(config_path) if config_path else {}
    platform = data.get("platform", {})
    database = data.get("database", {})
    blobs = data.get("blobs", {})
    server = data.get("server", {})
    governance = data.get("governance", {})
    known = {"platform", "database", "blobs", "server", "governance"}
    return Settings(
        home=home_path,
        uri=uri or platform.get("uri"),
        database_url=env.get("MESHOPS_DATABASE_URL")
        or database.get("url")
        or _default_database_url(home_path),
        blob_url=env.get("MESHOPS_BLOB_URL") or blobs.get("url") or str(home_path / "blobs"),
        blob_options=dict(blobs.get("options", {})),
        user=env.get("MESHOPS_USER") or platform.get("user") or _login_name(),
        run_as=env.get("MESHOPS_RUN_AS") or None,
        token=env.get("MESHOPS_TOKEN")
        or platform.get("token")
        or stored_token(uri or platform.get("uri"), env),
        server_host=env.get("MESHOPS_SERVER_HOST") or server.get("host", "127.0.0.1"),
        server_port=int(env.get("MESHOPS_SERVER_PORT") or server.get("port", 8080)),
        max_request_mb=_size_mb(
            "max_request_mb",
            env.get("MESHOPS_MAX_REQUEST_MB") or server.get("max_request_mb"),
            DEFAULT_MAX_REQUEST_MB,
        ),
        max_upload_mb=_size_mb(
            "max_upload_mb",
            env.get("MESHOPS_MAX_UPLOAD_MB") or server.get("max_upload_mb"),
            DEFAULT_MAX_UPLOAD_MB,
        ),
        metrics_address=_address(
            "metrics_address",
            env.get("MESHOPS_METRICS_ADDRESS") or server.get("metrics_address") or "",
        ),
        log_format=checked_log_format(
            env.get("MESHOPS_LOG_FORMAT") or server.get("log_format") or "text"
        ),
        config_file=config_path,
        authorizer=governance.get("authorizer", DEFAULT_AUTHORIZER),
        read_guard=governance.get("read_guard", DEFAULT_READ_GUARD),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _size_mb(name: str, value: Any, default: float) -> float:
    """A `[server]` size limit in MiB: a positive number."""
    if value is None:
        return default
    try:
        size = float(value)
    except (TypeError, ValueError):
        size = -1.0
    if not 0 < size < float("inf"):
        raise InvalidInput(
            f"[server] {name} must be a positive number of MiB, not {value!r}",
            {"field": f"server.{name}", "fix": f"e.g. `{name} = {default:g}` in meshops.toml"},
        )
    return size


def checked_log_format(value: Any) -> str:
    """`[server] log_format` (or `MESHOPS_LOG_FORMAT`): one of LOG_FORMATS."""
    if value not in LOG_FORMATS:
        raise InvalidInput(
            f"[server] log_format must be one of {', '.join(LOG_FORMATS)}, not {value!r}",
            {"field": "server.log_format", "fix": 'e.g. `log_format = "json"` in meshops.toml'},
        )
    return str(value)


def _address(name: str, value: Any) -> str:
    """An optional `[server]` listen address, "host:port"."""
    if value == "":
        return ""
    host, _, port = str(value).rpartition(":")
    if not (isinstance(value, str) and host and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput(
            f'[server] {name} must be "host:port", not {value!r}',
            {"field": f"server.{name}", "fix": f'e.g. `{name} = "127.0.0.1:9100"` in meshops.toml'},
        )
    return value


def credentials_file(env: dict[str, str] | None = None) -> Path:
    """Where `meshops login` keeps tokens per server URL (a user file, mode 0600)."""
    env = dict(os.environ) if env is None else env
    if env.get("MESHOPS_CREDENTIALS"):
        return Path(env["MESHOPS_CREDENTIALS"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "meshops" / "credentials.toml"


def stored_token(uri: str | None, env: dict[str, str] | None = None) -> str | None:
    """The token `meshops login` stored for the server at `uri`, if any."""
    if not uri or not uri.startswith(("http://", "https://")):
        return None
    path = credentials_file(env)
    if not path.is_file():
        return None
    servers = _read_toml(path).get("servers", {})
    entry = servers.get(uri.rstrip("/"), {})
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) else None


def store_token(uri: str, token: str, env: dict[str, str] | None = None) -> Path:
    """Remember `token` for the server at `uri` (used when MESHOPS_TOKEN is unset)."""
    import json

    path = credentials_file(env)
    servers = _read_toml(path).get("servers", {}) if path.is_file() else {}
    servers[uri.rstrip("/")] = {"token": token}
    # TOML basic strings accept JSON string escapes, so json.dumps quotes safely.
    lines = ["# written by `meshops login`; keep private", ""]
    for url, entry in sorted(servers.items()):
        lines += [f"[servers.{json.dumps(url)}]", f"token = {json.dumps(entry['token'])}", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines))
    return path


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"
