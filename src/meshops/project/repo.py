"""Reading a project repository: its layout, its specs and the git commit it is at.

```
meshops.toml                         [project] name; settings of the platform it targets
domains/<domain>/domain.yaml         optional: description, owners, members, team
domains/<domain>/products/<name>/    dataproduct.yaml, *.odcs.yaml, build.yaml, transform
features/*.yaml                      entities, feature views, feature services
policies/*.yaml                      `policies:` list (id, target, severity, expression ...)
pipelines/*.py, pipelines/*.yaml     pipeline code; `schedules:` and `triggers:` lists
tests/                               transform tests (pytest), run by `meshops check`
```
"""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshops.kernel.bounds import load_bounded_yaml
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.project.models import GitInfo

CONFIG_FILE = "meshops.toml"


@dataclass
class SpecError:
    file: str
    message: str


@dataclass
class Repository:
    root: Path
    name: str
    config: dict[str, Any]
    domains: dict[str, dict[str, Any]]  # domain -> domain.yaml content ({} when absent)
    domain_files: dict[str, str]
    product_folders: list[Path]
    feature_files: list[Path]
    policy_docs: list[tuple[str, int, dict[str, Any]]]  # (file, index, policy mapping)
    schedules: list[tuple[str, dict[str, Any]]]  # (file, schedule mapping)
    triggers: list[tuple[str, dict[str, Any]]]
    errors: list[SpecError] = field(default_factory=list)

    def rel(self, path: Path | str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(path)


def find_root(start: str | Path = ".") -> Path:
    """The repository root: the nearest folder upwards holding meshops.toml."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise InvalidInput(
        f"no {CONFIG_FILE} in {here} or above: not a meshops project",
        {"file": str(here), "fix": "run `meshops init` to create a project, or cd into one"},
    )


def _yaml(path: Path, errors: list[SpecError], root: Path) -> Any:
    try:
        return load_bounded_yaml(path.read_text(), str(path.relative_to(root))) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        errors.append(SpecError(str(path.relative_to(root)), f"not valid YAML{line}: {exc}"))
        return {}


def _list_section(
    path: Path, data: Any, section: str, errors: list[SpecError], root: Path
) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        errors.append(SpecError(str(path.relative_to(root)), "expected a mapping at the top"))
        return []
    items = data.get(section) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        errors.append(SpecError(str(path.relative_to(root)), f"`{section}` must be a list"))
        return []
    return items


def load_repository(root: str | Path) -> Repository:
    root = Path(root).resolve()
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise InvalidInput(
            f"{root} has no {CONFIG_FILE}",
            {"file": str(config_path), "fix": "run `meshops init` or pass the project folder"},
        )
    try:
        config = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{config_path}: {exc}", {"file": str(config_path), "fix": "fix the TOML syntax"}
        ) from exc
    name = str(config.get("project", {}).get("name") or root.name)
    errors: list[SpecError] = []
    domains: dict[str, dict[str, Any]] = {}
    domain_files: dict[str, str] = {}
    products: list[Path] = []
    for domain_dir in sorted(p for p in (root / "domains").glob("*") if p.is_dir()):
        domain_file = domain_dir / "domain.yaml"
        data = _yaml(domain_file, errors, root) if domain_file.is_file() else {}
        domains[domain_dir.name] = data if isinstance(data, dict) else {}
        domain_files[domain_dir.name] = str(
            (domain_file if domain_file.is_file() else domain_dir).relative_to(root)
        )
        products += sorted(
            p for p in (domain_dir / "products").glob("*") if (p / "dataproduct.yaml").is_file()
        )
    policy_docs = []
    for path in sorted([*(root / "policies").glob("*.yaml"), *(root / "policies").glob("*.yml")]):
        data = _yaml(path, errors, root)
        for i, item in enumerate(_list_section(path, data, "policies", errors, root)):
            policy_docs.append((str(path.relative_to(root)), i, item))
    schedules, triggers = [], []
    pipelines_dir = root / "pipelines"
    for path in sorted([*pipelines_dir.glob("*.yaml"), *pipelines_dir.glob("*.yml")]):
        data = _yaml(path, errors, root)
        rel = str(path.relative_to(root))
        schedules += [(rel, s) for s in _list_section(path, data, "schedules", errors, root)]
        triggers += [(rel, t) for t in _list_section(path, data, "triggers", errors, root)]
    features_dir = root / "features"
    feature_files = sorted([*features_dir.glob("*.yaml"), *features_dir.glob("*.yml")])
    return Repository(
        root=root,
        name=name,
        config=config,
        domains=domains,
        domain_files=domain_files,
        product_folders=products,
        feature_files=feature_files,
        policy_docs=policy_docs,
        schedules=schedules,
        triggers=triggers,
        errors=errors,
    )


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], check=False, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(root: str | Path) -> GitInfo:
    """The commit, branch and cleanliness of the working tree (None outside git)."""
    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    status = _git(root, "status", "--porcelain", "--untracked-files=normal")
    return GitInfo(
        commit=commit,
        branch=_git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        dirty=bool(status),
        remote=_git(root, "config", "--get", "remote.origin.url"),
    )


def run_git(root: str | Path, *args: str) -> str:
    """Run git in `root`; raise with git's message when it fails."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MeshopsError(f"git {' '.join(args)} failed: {exc}") from exc
    if out.returncode != 0:
        raise MeshopsError(
            f"git {' '.join(args)} failed: {out.stderr.strip() or out.stdout.strip()}",
            {"fix": "check the checkout path and its remote"},
        )
    return out.stdout.strip()
