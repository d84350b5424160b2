"""`meshops init`: a new project repository from a template.

`templates/default/` is the base of every project; another template (`templates/<name>/`) is
copied over it, so a template only holds what it adds or replaces (the training-pipeline
template adds its files under `pipelines/`). Files ending `.j2` are rendered with Jinja2
(`project`, `owner`), files ending `.tmpl` are copied without the suffix, `gitignore` becomes
`.gitignore`; the rest are copied as they are.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from meshops.kernel.errors import Conflict, InvalidInput

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Modules the package ships and a template copies in as they are, so the project gets the
# same code the platform tests (one source, no copy kept in templates/).
PACKAGED_FILES: dict[str, dict[str, str]] = {
    "training-pipeline": {"pipelines/training.py": "meshops.pipelines.templates.training"},
}
BASE = "default"


def templates() -> list[str]:
    return sorted(p.name for p in TEMPLATES.iterdir() if p.is_dir() and p.name != "__pycache__")


def _target_name(rel: Path) -> Path:
    name = rel.name
    if name.endswith(".j2"):
        name = name[:-3]
    elif name.endswith(".tmpl"):
        name = name[:-5]
    if name == "gitignore":
        name = ".gitignore"
    return rel.with_name(name)


def init(
    target: str | Path,
    *,
    template: str = BASE,
    project: str | None = None,
    owner: str = "local",
    git: bool = True,
) -> list[Path]:
    """Create the project in `target` (new or empty); returns the files written. With
    `git`, the folder becomes a git repository (branch main) if it is not one already."""
    import jinja2

    if template not in templates():
        raise InvalidInput(
            f"unknown template {template!r}",
            {"field": "template", "known": templates(), "fix": f"use one of {templates()}"},
        )
    root = Path(target)
    if root.exists() and any(p.name != ".git" for p in root.iterdir()):
        raise Conflict(f"{root} exists and is not empty", {"fix": "init into a new folder"})
    root.mkdir(parents=True, exist_ok=True)
    values = {"project": project or root.resolve().name, "owner": owner}
    written: dict[Path, None] = {}
    layers = [BASE] if template == BASE else [BASE, template]
    for layer in layers:
        base = TEMPLATES / layer
        for source in sorted(p for p in base.rglob("*") if p.is_file()):
            if "__pycache__" in source.parts:
                continue
            out = root / _target_name(source.relative_to(base))
            out.parent.mkdir(parents=True, exist_ok=True)
            if source.name.endswith(".j2"):
                text = jinja2.Template(source.read_text(), keep_trailing_newline=True)
                out.write_text(text.render(**values))
            else:
                shutil.copyfile(source, out)
            written.setdefault(out)
    for relative, module in PACKAGED_FILES.get(template, {}).items():
        out = root / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_module_file(module), out)
        written.setdefault(out)
    if git and not (root / ".git").exists():
        subprocess.run(
            ["git", "init", "--quiet", "--initial-branch=main", str(root)],
            check=False,
            capture_output=True,
        )
    return list(written)


def _module_file(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InvalidInput(f"the template module {module} is not installed")
    return Path(spec.origin)
