"""Artifact files on the caller's side, the same for both transports: the files of a
folder to log, and the download of a run's artifacts into a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshops.kernel.errors import NotFound
from meshops.tracking.models import Artifact, check_artifact_path


def artifact_files(local_path: str | Path, artifact_path: str | None) -> list[tuple[Path, str]]:
    """(file, artifact path) pairs of a file or of every file under a folder."""
    source = Path(local_path)
    if not source.exists():
        raise NotFound(
            f"no file or folder at {source}",
            {"field": "local_path", "file": str(source), "fix": "check the path"},
        )
    base = artifact_path.strip("/") if artifact_path else ""
    if source.is_file():
        target = f"{base}/{source.name}" if base else source.name
        return [(source, check_artifact_path(target))]
    pairs = []
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = file.relative_to(source).as_posix()
        pairs.append((file, check_artifact_path(f"{base}/{rel}" if base else rel)))
    return pairs


def select_artifacts(listed: list[Artifact], path: str, run_id: str) -> list[Artifact]:
    folder = path.rstrip("/") + "/"
    matches = [a for a in listed if a.path == path or a.path.startswith(folder) or not path]
    if not matches:
        raise NotFound(
            f"run {run_id} has no artifact at {path!r}",
            {"field": "path", "fix": f"list them with `meshops runs show {run_id}`"},
        )
    return matches


def write_artifacts(matches: list[Artifact], path: str, dest: str | Path, read: Any) -> Path:
    """Write artifacts under `dest`, keeping paths relative to the requested folder."""
    target = Path(dest)
    if len(matches) == 1 and matches[0].path == path:
        target.mkdir(parents=True, exist_ok=True)
        out = target / Path(path).name
        out.write_bytes(read(matches[0].digest))
        return out
    root = target / Path(path.rstrip("/")).name if path else target
    for artifact in matches:
        rel = artifact.path[len(path.rstrip("/")) + 1 :] if path else artifact.path
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(read(artifact.digest))
    return root
