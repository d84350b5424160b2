"""`reproduce`: rerun a past run with its recorded code version, parameters and inputs, and
compare its output digests with the original's, step by step.

The rerun happens in a fresh Python process (`python -m meshops.pipelines.reproduction`),
which imports the pipeline from a checkout of the recorded commit (`git archive` into a
temporary folder: read-only for the repository, nothing to clean up in it), so neither the
modules already imported here nor the working tree's later edits leak into it. That process
records the rerun on the same platform (the same home, or the same server).

What cannot be checked out is refused, not guessed: a run without a recorded commit (its
code was not in git), a run made from a dirty working tree (the exact code is in no commit,
unless the working tree still has the same commit and the same uncommitted diff), or a
commit that is not in the repository here. `use_current_code` reruns with the code as it is
now instead, and the report says so.

The platform's own package is not swapped: a pipeline module inside an already-imported
package (e.g. `meshops.*`) comes from that package, and the report says where it was loaded
from.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from meshops.kernel import ports
from meshops.kernel.errors import Conflict
from meshops.pipelines.codeversion import TreeState, git, tree_state
from meshops.pipelines.interface import Pipelines
from meshops.pipelines.models import (
    CodeVersion,
    PipelineRun,
    ReproducedCode,
    ReproduceReport,
    RunDetail,
    RunStatus,
)

USE_CURRENT_FIX = "rerun with the code as it is now: --use-current-code (use_current_code=True)"


@dataclass(frozen=True)
class CodePlan:
    """Which code the rerun imports: a checkout of `checkout.commit`, or the current code."""

    checkout: CodeVersion | None
    commit: str | None
    note: str


def plan_code(run: PipelineRun, use_current_code: bool) -> CodePlan:
    recorded = run.code
    if use_current_code:
        was = f"; the run recorded commit {recorded.commit}" if recorded else ""
        return CodePlan(None, None, f"the current code, as asked{was}")
    if recorded is None:
        raise Conflict(
            f"run {run.id} recorded no code version (its pipeline was not in a git "
            "repository when it ran), so its code cannot be checked out",
            {"fix": USE_CURRENT_FIX},
        )
    if recorded.dirty:
        return _plan_for_dirty(run, recorded)
    if not _commit_available(recorded):
        raise Conflict(
            f"commit {recorded.commit} of run {run.id} is not available in {recorded.repo}",
            {"fix": f"fetch that commit into {recorded.repo}, or {USE_CURRENT_FIX}"},
        )
    if run.ref.rpartition(":")[0].endswith(".py") or recorded.import_root is not None:
        return CodePlan(recorded, recorded.commit, f"a checkout of commit {recorded.commit}")
    raise Conflict(
        f"run {run.id}: cannot tell where module {run.ref} is imported from in a checkout",
        {"fix": USE_CURRENT_FIX},
    )


def _plan_for_dirty(run: PipelineRun, recorded: CodeVersion) -> CodePlan:
    """A dirty tree's code is in no commit; it is still here if nothing changed since."""
    now = tree_state(Path(recorded.repo), recorded.path) if Path(recorded.repo).is_dir() else None
    if now == _recorded_state(recorded):
        return CodePlan(
            None,
            recorded.commit,
            f"the working tree, still at commit {recorded.commit} with the same uncommitted "
            f"changes (diff sha256 {recorded.diff_sha256}) as when the run was made",
        )
    raise Conflict(
        f"run {run.id} was made from a working tree with uncommitted changes at commit "
        f"{recorded.commit} (diff sha256 {recorded.diff_sha256}); that code is in no commit "
        "and the working tree has changed since",
        {"fix": f"commit changes before runs you want to reproduce, or {USE_CURRENT_FIX}"},
    )


def _recorded_state(recorded: CodeVersion) -> TreeState:
    return TreeState(recorded.commit, recorded.dirty, recorded.diff_sha256)


def _commit_available(recorded: CodeVersion) -> bool:
    repo = Path(recorded.repo)
    return (
        repo.is_dir() and git(repo, "cat-file", "-e", f"{recorded.commit}^{{commit}}") is not None
    )


def checkout(recorded: CodeVersion, into: Path) -> None:
    """The files of the recorded commit, extracted into `into` (`git archive`)."""
    into.mkdir(parents=True)
    command = ["git", "-C", recorded.repo, "archive", "--format=tar", recorded.commit]
    unreadable = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                archive.extractall(into, filter="data")
        except tarfile.TarError as exc:  # git wrote no archive (its error is on stderr)
            unreadable = str(exc)
        error = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.returncode != 0 or unreadable:
        raise Conflict(
            f"cannot check out commit {recorded.commit} of {recorded.repo}: {error or unreadable}",
            {"fix": USE_CURRENT_FIX},
        )


def relocate(ref: str, recorded: CodeVersion, tree: Path) -> tuple[str, str | None]:
    """The reference to load from the checkout, and the sys.path entry it needs."""
    module_ref, _, qualname = ref.rpartition(":")
    if module_ref.endswith(".py"):
        return f"{tree / recorded.path}:{qualname}", None
    assert recorded.import_root is not None
    return ref, str(tree / recorded.import_root)


def reproduce(
    pipelines: Pipelines,
    connection: dict[str, Any],
    run_id: str,
    executor: str,
    use_current_code: bool,
) -> ReproduceReport:
    """Rerun `run_id` in a fresh process (see the module docstring) and compare digests.
    `connection` tells that process how to reach this platform (`home_connection` or
    `http_connection`)."""
    original = pipelines.get_run(run_id)
    plan = plan_code(original.run, use_current_code)
    with tempfile.TemporaryDirectory(prefix="meshops-reproduce-") as tmp:
        ref, sys_path, code = original.run.ref, None, None
        tree = Path(tmp) / "tree"
        if plan.checkout is not None:
            checkout(plan.checkout, tree)
            ref, sys_path = relocate(ref, plan.checkout, tree)
            code = plan.checkout
        request = {
            "connection": connection,
            "ref": ref,
            "record_ref": original.run.ref,
            "sys_path": sys_path,
            "params": original.run.params,
            "executor": executor,
            "reproduces": run_id,
            "code": None if code is None else code.model_dump(),
            "result_file": str(Path(tmp) / "result.json"),
        }
        result = _run_child(request, run_id)
        loaded_from = result["loaded_from"]
        from_checkout = plan.checkout is None or Path(loaded_from).is_relative_to(tree)
    rerun = pipelines.get_run(result["run_id"])
    report = compare_runs(original, rerun)
    report.code = _reproduced_code(original.run, plan, loaded_from, from_checkout)
    return report


def _reproduced_code(
    run: PipelineRun, plan: CodePlan, loaded_from: str, from_checkout: bool
) -> ReproducedCode:
    if from_checkout:
        source = "commit" if plan.checkout is not None else "current"
        return ReproducedCode(
            source=source,
            commit=plan.commit,
            recorded=run.code,
            loaded_from=loaded_from,
            note=f"reran with {plan.note}",
        )
    return ReproducedCode(
        source="current",
        commit=None,
        recorded=run.code,
        loaded_from=loaded_from,
        note=f"the pipeline module was imported from {loaded_from}, not from the checkout of "
        f"commit {plan.commit} (its package was already imported by the platform)",
    )


def _run_child(request: dict[str, Any], run_id: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "meshops.pipelines.reproduction"],
        # default=str: settings may hold TOML values JSON lacks (dates); text suffices there
        input=json.dumps(request, default=str).encode(),
        capture_output=True,
        check=False,
    )
    result_file = Path(request["result_file"])
    if done.returncode != 0 or not result_file.is_file():
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-12:]
        raise Conflict(
            f"the rerun of {run_id} failed before it could be compared:\n" + "\n".join(tail),
            {"fix": "see the error above; the recorded code may not import here"},
        )
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def home_connection(settings: Any, actor: Any) -> dict[str, Any]:
    """How the rerun process opens the same embedded home, as the same actor."""
    fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    return {
        "kind": "home",
        "settings": fields,
        "actor": {
            "name": actor.name,
            "kind": actor.kind,
            "scopes": None if actor.scopes is None else sorted(actor.scopes),
            "roles": sorted(actor.roles),
        },
    }


def http_connection(uri: str, token: str | None) -> dict[str, Any]:
    return {"kind": "http", "uri": uri, "token": token}


def compare_runs(original: RunDetail, rerun: RunDetail) -> ReproduceReport:
    """Per step: did the rerun produce the same output digests from the same code?"""
    before = {s.node: s for s in original.steps}
    rows = []
    for step_run in rerun.steps:
        old = before.get(step_run.node)
        old_digests = [o.digest for o in old.outputs] if old else []
        new_digests = [o.digest for o in step_run.outputs]
        rows.append(
            {
                "node": step_run.node,
                "same_code": old is not None and old.code_digest == step_run.code_digest,
                "same_inputs": old is not None and old.inputs == step_run.inputs,
                "same_outputs": old_digests == new_digests,
                "original_outputs": old_digests,
                "rerun_outputs": new_digests,
            }
        )
    matches = (
        rerun.run.status == RunStatus.SUCCEEDED
        and len(rows) == len(before)
        and all(r["same_outputs"] for r in rows)
    )
    return ReproduceReport(
        original=original.run.id, rerun=rerun.run.id, matches=matches, steps=rows
    )


# --- the rerun process -------------------------------------------------------------------


def _open(connection: dict[str, Any]) -> tuple[Pipelines, Any]:
    """The platform's pipelines, and what to close afterwards."""
    if connection["kind"] == "http":
        platform = ports.PLATFORM_OPENER.get().open(connection["uri"], token=connection["token"])
        return platform.pipelines, platform
    from meshops.kernel.auth import Actor
    from meshops.kernel.config import Settings
    from meshops.kernel.home import Home
    from meshops.pipelines.service import PipelinesService

    fields = dict(connection["settings"])
    fields["home"] = Path(fields["home"])
    if fields.get("config_file"):
        fields["config_file"] = Path(fields["config_file"])
    home = Home(Settings(**fields), auto_upgrade=False)
    who = connection["actor"]
    scopes = None if who["scopes"] is None else frozenset(who["scopes"])
    actor = Actor(who["name"], who["kind"], scopes, frozenset(who["roles"]))
    return PipelinesService(home.context(actor)), home


def _rerun(request: dict[str, Any]) -> dict[str, Any]:
    from meshops.pipelines.dsl import load_pipeline
    from meshops.pipelines.remote import run_host
    from meshops.pipelines.runner import run_here

    if request["sys_path"]:
        sys.path.insert(0, request["sys_path"])
    pipelines, opened = _open(request["connection"])
    try:
        definition = load_pipeline(request["ref"])
        module = sys.modules.get(definition.fn.__module__)
        code = request["code"]
        detail = run_here(
            run_host(pipelines),
            definition,
            request["params"],
            request["executor"],
            reproduces=request["reproduces"],
            use_cache=False,
            code=None if code is None else CodeVersion.model_validate(code),
            record_ref=request["record_ref"],
        )
    finally:
        opened.close()
    return {"run_id": detail.run.id, "loaded_from": str(getattr(module, "__file__", ""))}


def main() -> None:
    request = json.loads(sys.stdin.read())
    result = _rerun(request)
    Path(request["result_file"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
