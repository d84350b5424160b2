"""Real git repositories in temporary folders, driven with the git CLI, and `meshops init`
projects committed in them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from meshops.project import scaffold

# No user or system git configuration: commits are reproducible and hooks never run.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Alice",
    "GIT_AUTHOR_EMAIL": "alice@example.com",
    "GIT_COMMITTER_NAME": "Alice",
    "GIT_COMMITTER_EMAIL": "alice@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "HOME": "/nonexistent",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(root: Path, *args: str) -> str:
    """git's stdout, stripped; a failing git command raises."""
    out = subprocess.run(
        ["git", "-C", str(root), *args],
        check=True,
        capture_output=True,
        text=True,
        env=GIT_ENV,
    )
    return out.stdout.strip()


def commit_all(root: Path, message: str) -> str:
    """Commit every change in the work tree; the new commit's hash."""
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", message)
    return git(root, "rev-parse", "HEAD")


def new_project(root: Path) -> Path:
    """`meshops init` of project "shop" (owner alice) at `root`, committed."""
    scaffold.init(root, project="shop", owner="alice")
    commit_all(root, "meshops init")
    return root
