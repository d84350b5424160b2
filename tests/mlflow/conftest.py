"""The real MLflow client against a real meshops server.

The client lives in its own virtualenv (`make mlflow-client` makes `.venv-mlflow/` from
tests/mlflow/requirements.txt), so its dependencies never meet meshops's. Tests write a
client script, run it in that virtualenv with MLFLOW_TRACKING_URI/MLFLOW_TRACKING_TOKEN
pointing at a live meshops server on loopback, and read what it printed. Starting the
client's interpreter costs seconds: batch many client calls into one script.

Without the virtualenv the tests skip, naming `make mlflow-client`; in CI (`CI=true`) a
missing client is a failure, never a silent skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshops.governance.service import GovernanceService
from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings

REPO = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON_ENV = "MESHOPS_MLFLOW_PYTHON"  # another client interpreter, if wanted
SCRIPT_TIMEOUT = 300  # seconds; a hung client fails the test instead of the suite

# The people of the test server: the home's own user is the admin.
DATA_SCIENTIST = "dana"
CONSUMER = "carl"


def mlflow_python_path() -> Path | None:
    configured = os.environ.get(MLFLOW_PYTHON_ENV)
    candidate = Path(configured) if configured else REPO / ".venv-mlflow" / "bin" / "python"
    return candidate if candidate.exists() else None


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The interpreter of the MLflow client's virtualenv."""
    found = mlflow_python_path()
    if found is None:
        message = (
            "the MLflow client virtualenv is missing: run `make mlflow-client` "
            f"(or set {MLFLOW_PYTHON_ENV} to a Python with mlflow installed)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class ScriptResult:
    rc: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last non-empty line of stdout, parsed as JSON (scripts print their result
        with `print(json.dumps(...))` as their last output)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"the script printed nothing; stderr:\n{self.stderr[-4000:]}")
        return json.loads(lines[-1])


@dataclass
class MlflowWorld:
    """A live meshops server, tokens of an admin, a data scientist and a consumer, and
    the MLflow client to run scripts against it."""

    home: Home
    server: LiveServer
    python: Path
    workdir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin(self) -> str:
        return self.home.settings.user

    def token(self, role: str = "admin") -> str:
        """The API token of `admin`, `data_scientist` or `consumer`."""
        return self.tokens[role]

    def env(self, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MESHOPS_"))}
        env.update(
            {
                "MLFLOW_TRACKING_URI": self.url,
                # A refusal is an answer: no retries with back-off on 4xx/5xx.
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
                "PYTHONUNBUFFERED": "1",
                "GIT_PYTHON_REFRESH": "quiet",
            }
        )
        if token is not None:
            env["MLFLOW_TRACKING_TOKEN"] = token
        return env

    def run(
        self,
        script: str,
        *,
        token: str | None = "admin",
        env: dict[str, str] | None = None,
    ) -> ScriptResult:
        """Run `script` (dedented) with the MLflow client. `token` is a role name
        (admin, data_scientist, consumer), a raw token, or None for no token."""
        raw = self.tokens.get(token, token) if token is not None else None
        folder = self.workdir / uuid.uuid4().hex[:8]
        folder.mkdir(parents=True)
        path = folder / "script.py"
        path.write_text(textwrap.dedent(script))
        proc = subprocess.run(
            [str(self.python), str(path)],
            cwd=folder,
            env={**self.env(raw), **(env or {})},
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
        return ScriptResult(proc.returncode, proc.stdout, proc.stderr)

    def run_json(self, script: str, **kwargs: Any) -> Any:
        """Run a script that must succeed; its last printed line, parsed as JSON."""
        result = self.run(script, **kwargs)
        assert result.rc == 0, (
            f"the MLflow client script failed (rc={result.rc}):\n{result.stderr[-6000:]}"
        )
        return result.json()


@pytest.fixture(scope="module")
def mlflow_world(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowWorld]:
    """One governed meshops server per test module (opening a home migrates every area),
    with tokens for an admin, a data scientist and a consumer."""
    base = tmp_path_factory.mktemp("mlflow")
    home = Home(make_settings(base / "home"))
    try:
        gov = GovernanceService(home.context())
        gov.create_user(DATA_SCIENTIST)
        gov.bind_role(DATA_SCIENTIST, "data_scientist")
        gov.create_user(CONSUMER)  # no role binding: a consumer
        tokens = {
            "admin": gov.create_token("mlflow-admin").token,
            "data_scientist": gov.create_token("mlflow-ds", principal=DATA_SCIENTIST).token,
            "consumer": gov.create_token("mlflow-consumer", principal=CONSUMER).token,
        }
        with LiveServer(home) as server:
            yield MlflowWorld(home, server, mlflow_python, base / "scripts", tokens)
    finally:
        home.close()
