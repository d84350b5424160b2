"""What a run captures about where it ran: code version (git), Python, packages, host.

Computed once per process and working directory (git and the package scan cost tens of
milliseconds; a run start must not), then attached to each run as `meshops.*` tags plus a
package listing artifact.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata

PACKAGES_ARTIFACT = "meshops/environment/packages.txt"
GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Environment:
    tags: dict[str, str]
    packages: bytes = field(repr=False)


def _git(cwd: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git binary, or it hung: the run simply has no code version
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").strip()


def git_tags(cwd: str) -> dict[str, str]:
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return {}
    tags = {"meshops.git.commit": commit}
    branch = _git(cwd, "rev-parse", "--abbrev-ref", "HEAD")
    if branch:
        tags["meshops.git.branch"] = branch
    remote = _git(cwd, "config", "--get", "remote.origin.url")
    if remote:
        tags["meshops.git.remote"] = remote
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    dirty = bool(status)
    tags["meshops.git.dirty"] = str(dirty).lower()
    if dirty:
        # The diff digest links the run to the exact uncommitted change (C2).
        try:
            diff = subprocess.run(
                ["git", "diff", "HEAD", "--no-color", "--no-ext-diff"],
                cwd=cwd,
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            diff = b""
        tags["meshops.git.diff_sha256"] = hashlib.sha256(diff).hexdigest()
    return tags


def package_listing() -> bytes:
    names = {
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return ("\n".join(sorted(names, key=str.lower)) + "\n").encode()


@functools.cache
def _capture(cwd: str) -> Environment:
    packages = package_listing()
    tags = {
        "meshops.python.version": platform.python_version(),
        "meshops.python.executable": sys.executable,
        "meshops.packages.sha256": hashlib.sha256(packages).hexdigest(),
        "meshops.host": socket.gethostname(),
        "meshops.platform": platform.platform(),
        **git_tags(cwd),
    }
    if sys.argv and sys.argv[0]:
        tags["meshops.source"] = sys.argv[0][-8000:]
    return Environment(tags, packages)


def capture() -> Environment:
    """The environment of this process in its current working directory (cached)."""
    return _capture(os.getcwd())
