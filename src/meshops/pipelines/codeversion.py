"""The git code version of a pipeline: recorded with each run so `reproduce` can import the
same code again from a checkout of that commit.

The version is taken once per module per process, when the process first runs it: a module
is imported once and stays in memory, so that moment describes the code the process runs
(a worker that keeps running does not pick up later edits either).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from meshops.pipelines.dsl import PipelineDefinition
from meshops.pipelines.models import CodeVersion

GIT_TIMEOUT_S = 10.0


def git(cwd: Path, *args: str) -> bytes | None:
    """git's stdout, or None when git is missing, fails or hangs (no code version then)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_text(cwd: Path, *args: str) -> str | None:
    out = git(cwd, *args)
    return None if out is None else out.decode("utf-8", "replace").strip()


@dataclass(frozen=True)
class TreeState:
    commit: str
    dirty: bool
    diff_sha256: str | None


def tree_state(root: Path, relative: str) -> TreeState | None:
    """The commit of the working tree at `root`, and whether the code differs from it: any
    change to a tracked file, or the pipeline's own file not being tracked at all."""
    commit = git_text(root, "rev-parse", "--verify", "HEAD")
    if commit is None:  # not a repository, or no commit yet
        return None
    tracked = git(root, "ls-files", "--error-unmatch", "--", relative) is not None
    changed = bool(git_text(root, "status", "--porcelain", "--untracked-files=no"))
    if tracked and not changed:
        return TreeState(commit, False, None)
    digest = hashlib.sha256(git(root, "diff", "HEAD", "--no-color", "--no-ext-diff") or b"")
    if not tracked:  # the untracked file is part of the uncommitted change
        digest.update((root / relative).read_bytes())
    return TreeState(commit, True, digest.hexdigest())


def _import_root(module_name: str, path: Path, is_file_ref: bool) -> Path | None:
    """The sys.path entry `module_name` was imported from (None for file references)."""
    if is_file_ref or module_name == "__main__":
        return None
    depth = len(module_name.split("."))
    levels = depth if path.name == "__init__.py" else depth - 1
    return path.parents[levels] if levels < len(path.parents) else None


@functools.lru_cache(maxsize=256)
def _module_code_version(module_name: str, file: str, is_file_ref: bool) -> CodeVersion | None:
    path = Path(file).resolve()
    root_text = git_text(path.parent, "rev-parse", "--show-toplevel")
    if root_text is None:
        return None
    root = Path(root_text).resolve()
    try:
        relative = path.relative_to(root).as_posix()
        import_root = _import_root(module_name, path, is_file_ref)
        import_relative = None if import_root is None else import_root.relative_to(root)
    except ValueError:  # the module lives outside the repository found from its folder
        return None
    state = tree_state(root, relative)
    if state is None:
        return None
    return CodeVersion(
        repo=str(root),
        commit=state.commit,
        dirty=state.dirty,
        diff_sha256=state.diff_sha256,
        path=relative,
        import_root=None if import_relative is None else import_relative.as_posix(),
    )


def code_version_of(definition: PipelineDefinition) -> CodeVersion | None:
    """The code version of the module defining `definition` (None outside git)."""
    module = sys.modules.get(definition.fn.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    is_file_ref = getattr(module, "__meshops_file__", None) is not None
    return _module_code_version(definition.fn.__module__, file, is_file_ref)
