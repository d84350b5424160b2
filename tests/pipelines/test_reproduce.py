"""`reproduce` reruns a past run with the code of its recorded git commit (a checkout imported
in a fresh process), against real git repositories in temporary folders."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.errors import Conflict
from meshops.pipelines.models import RunStatus
from meshops.pipelines.worker import Worker, WorkerOptions
from tests.support.git import commit_all, git


def flow_source(factor: int) -> str:
    return f"""
from meshops.pipelines import pipeline, step


@step
def scale(n: int) -> list[int]:
    return [i * {factor} for i in range(n)]


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def numbers(n: int = 4):
    return total(scale(n))
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


def test_reproduce_checks_out_the_recorded_commit(platform: Platform, repo: Path) -> None:
    """On each transport: over HTTP the rerun process records through the server."""
    (repo / "flow.py").write_text(flow_source(1))
    first_commit = commit_all(repo, "v1")
    ref = f"{repo / 'flow.py'}:numbers"
    original = platform.pipelines.run(ref, {"n": 4})
    assert original.run.status == RunStatus.SUCCEEDED
    assert original.run.code is not None
    assert (original.run.code.commit, original.run.code.dirty) == (first_commit, False)
    assert original.run.code.path == "flow.py"
    # A worker records the code version it loaded for a queued run, too.
    queued = platform.pipelines.submit(ref, {"n": 2}, executor="inline")
    assert (
        Worker(platform.pipelines, options=WorkerOptions(poll_seconds=0.05)).serve(idle_exit=True)
        == 1
    )
    worked = platform.pipelines.get_run(queued.id).run
    assert worked.status == RunStatus.SUCCEEDED and worked.code == original.run.code

    (repo / "flow.py").write_text(flow_source(10))  # a change that alters the outputs
    second_commit = commit_all(repo, "v2: outputs change")

    report = platform.pipelines.reproduce(original.run.id)
    assert report.matches, report.steps
    assert all(s["same_code"] and s["same_outputs"] for s in report.steps)
    assert report.code is not None
    assert (report.code.source, report.code.commit) == ("commit", first_commit)
    assert first_commit in report.code.note
    assert report.code.loaded_from and not report.code.loaded_from.startswith(str(repo))
    rerun = platform.pipelines.get_run(report.rerun).run
    assert rerun.reproduces == original.run.id and rerun.ref == ref
    assert rerun.code is not None and rerun.code.commit == first_commit

    # The same run with today's code: the change shows as different digests.
    current = platform.pipelines.reproduce(original.run.id, use_current_code=True)
    assert not current.matches
    assert current.code is not None and current.code.source == "current"
    assert current.code.loaded_from == str(repo / "flow.py")
    assert [s["node"] for s in current.steps if not s["same_outputs"]] == ["scale", "total"]
    again = platform.pipelines.get_run(current.rerun).run
    assert again.code is not None and again.code.commit == second_commit


def test_reproduce_a_module_reference_imports_the_whole_old_tree(
    sqlite_platform: Platform, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = repo / "src" / "oldflows"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text("FACTOR = 3\n")
    source = flow_source(1).replace("i * 1", "i * FACTOR")
    (package / "flow.py").write_text("from oldflows.settings import FACTOR\n" + source)
    first_commit = commit_all(repo, "v1")
    monkeypatch.syspath_prepend(str(repo / "src"))
    try:
        original = sqlite_platform.pipelines.run("oldflows.flow:numbers", {"n": 5})
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "oldflows"]:
            del sys.modules[name]
    assert original.run.code is not None and original.run.code.import_root == "src"
    (package / "settings.py").write_text("FACTOR = 7\n")  # only a helper module changes
    commit_all(repo, "v2")

    report = sqlite_platform.pipelines.reproduce(original.run.id)
    assert report.matches, report.steps
    assert report.code is not None and report.code.commit == first_commit
    assert report.code.source == "commit"


def test_reproduce_refuses_what_it_cannot_check_out(
    sqlite_platform: Platform, repo: Path, tmp_path: Path
) -> None:
    (repo / "flow.py").write_text(flow_source(1))
    commit = commit_all(repo, "v1")
    (repo / "flow.py").write_text(flow_source(2))  # uncommitted when the run is made
    dirty = sqlite_platform.pipelines.run(f"{repo / 'flow.py'}:numbers")
    assert dirty.run.code is not None and dirty.run.code.dirty
    assert dirty.run.code.diff_sha256 and dirty.run.code.commit == commit

    # Unchanged since: the working tree still holds exactly the code that ran.
    same = sqlite_platform.pipelines.reproduce(dirty.run.id)
    assert same.matches and same.code is not None and same.code.source == "current"
    assert "same uncommitted changes" in same.code.note

    (repo / "flow.py").write_text(flow_source(3))
    with pytest.raises(Conflict, match="uncommitted changes") as refused:
        sqlite_platform.pipelines.reproduce(dirty.run.id)
    assert "--use-current-code" in refused.value.detail["fix"]
    current = sqlite_platform.pipelines.reproduce(dirty.run.id, use_current_code=True)
    assert not current.matches and current.code is not None
    assert current.code.recorded is not None and current.code.recorded.dirty

    # The repository is gone: the commit is not available here.
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "gone.py").write_text(flow_source(1))
    commit_all(other, "v1")
    gone = sqlite_platform.pipelines.run(f"{other / 'gone.py'}:numbers")
    shutil.rmtree(other / ".git")
    with pytest.raises(Conflict, match="not available"):
        sqlite_platform.pipelines.reproduce(gone.run.id)

    # Code outside git records no version.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "loose.py").write_text(flow_source(1))
    loose = sqlite_platform.pipelines.run(f"{plain / 'loose.py'}:numbers")
    assert loose.run.code is None
    with pytest.raises(Conflict, match="no code version"):
        sqlite_platform.pipelines.reproduce(loose.run.id)
    assert sqlite_platform.pipelines.reproduce(loose.run.id, use_current_code=True).matches
