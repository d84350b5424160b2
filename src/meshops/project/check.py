"""`meshops check`: the CI gate of a pull request.

Suites: `specs` (every spec loads and validates), `contracts` (every product is built from
its sample data and contract-tested), `transform-tests` (the project's pytest files under
`tests/`, run in a subprocess), `policies` (the publish policies dry-run over what would be
published, with the test results), `breaking-changes` (schema diff against the published
versions; a breaking change without a major version fails). Results render as JUnit XML and
as a Markdown summary for a pull-request comment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from meshops.kernel.errors import MeshopsError
from meshops.mesh.gate import publish_document
from meshops.project.apply import Built, build_products
from meshops.project.interface import Areas
from meshops.project.models import Change, CheckCase, CheckReport
from meshops.project.plan import dry_run, make_plan

TEST_TIMEOUT = 600


def check(areas: Areas, root: str | Path = ".", *, run_tests: bool = True) -> CheckReport:
    started = time.perf_counter()
    planned = make_plan(areas, root)
    plan = planned.plan
    report = CheckReport(project=plan.project, git=plan.git, plan=plan)
    for change in plan.changes:
        report.cases.append(
            CheckCase(
                suite="specs",
                name=f"{change.kind} {change.name}",
                passed=not change.errors,
                message="; ".join(change.errors),
                output=change.file,
            )
        )
    specs_by_key = {k: p.spec for k, p in planned.products.items()}
    t0 = time.perf_counter()
    built = build_products(areas, specs_by_key, list(specs_by_key))
    build_seconds = (time.perf_counter() - t0) / max(len(built), 1)
    for key, outcome in built.items():
        change = planned.products[key].change
        if isinstance(outcome, MeshopsError):
            report.cases.append(
                CheckCase(
                    suite="contracts",
                    name=key,
                    passed=False,
                    message=f"build failed: {outcome.message}",
                    seconds=build_seconds,
                )
            )
            continue
        for port, contract_report in outcome.reports.items():
            failures = contract_report.failures
            report.cases.append(
                CheckCase(
                    suite="contracts",
                    name=f"{key}.{port}",
                    passed=not failures,
                    message="; ".join(f"{f.rule}: {f.message}" for f in failures),
                    output=f"{contract_report.rows} rows, {len(contract_report.results)} rules",
                    seconds=contract_report.seconds,
                )
            )
            report.cases.extend(  # custom / text rules: reported as skipped, never dropped
                CheckCase(
                    suite="contracts",
                    name=f"{key}.{port} {r.rule}",
                    passed=True,
                    skipped=True,
                    message=f"{r.status}: {r.expected} ({r.message})",
                )
                for r in contract_report.results
                if r.status == "not evaluated"
            )
        _policy_case(report, planned.effective_policies, change, outcome)
    for change in plan.changes:
        if change.kind == "dataproduct" and change.breaking:
            ok = change.version_bump == "major"
            affected = change.affected.consumers + change.affected.models
            report.cases.append(
                CheckCase(
                    suite="breaking-changes",
                    name=change.name,
                    passed=ok,
                    message=(
                        f"{len(change.breaking)} breaking change(s) "
                        f"{change.published_version} -> {change.version}"
                        + ("" if ok else " without a major version bump")
                        + (f"; affects {', '.join(affected)}" if affected else "")
                    ),
                    output="\n".join(b.message for b in change.breaking),
                )
            )
    if run_tests:
        report.cases += transform_tests(Path(plan.root))
    report.seconds = time.perf_counter() - started
    return report


def _policy_case(report: CheckReport, policies: list, change: Change, built: Built) -> None:  # type: ignore[type-arg]
    if change.action not in ("new_version", "update"):
        return
    from meshops.project.apply import _diff_of

    document = publish_document(
        built.spec, change.published_version, _diff_of(change, built.spec), built.reports
    )
    outcomes = dry_run(policies, "dataproduct.publish", document, built.spec.domain)
    blocking = [o for o in outcomes if o.blocking]
    warnings = [o for o in outcomes if o.outcome != "pass" and not o.blocking]
    report.cases.append(
        CheckCase(
            suite="policies",
            name=f"dataproduct.publish {change.name} {change.version}",
            passed=not blocking,
            message="; ".join(f"{o.policy_id}: {o.explanation}" for o in blocking),
            output="; ".join(f"warning {o.policy_id}: {o.explanation}" for o in warnings),
        )
    )


def transform_tests(root: Path) -> list[CheckCase]:
    """Run the project's pytest files (tests/) in a subprocess; one case per test."""
    tests = root / "tests"
    if not tests.is_dir() or not any(tests.rglob("test_*.py")):
        return [
            CheckCase(
                suite="transform-tests",
                name="tests/",
                passed=True,
                skipped=True,
                message="no tests/test_*.py in the project",
            )
        ]
    with tempfile.TemporaryDirectory(prefix="meshops-check-") as tmp:
        junit = Path(tmp) / "pytest.xml"
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    f"--junitxml={junit}",
                    "--rootdir",
                    str(root),
                    str(tests),
                ],
                check=False,
                cwd=root,
                capture_output=True,
                text=True,
                timeout=TEST_TIMEOUT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return [
                CheckCase(
                    suite="transform-tests",
                    name="tests/",
                    passed=False,
                    message=f"timed out after {TEST_TIMEOUT} s",
                )
            ]
        cases = _parse_pytest_junit(junit) if junit.is_file() else []
    if not cases:
        cases = [
            CheckCase(
                suite="transform-tests",
                name="tests/",
                passed=out.returncode in (0, 5),
                skipped=out.returncode == 5,
                message=f"pytest exited with {out.returncode}",
                output=(out.stdout + out.stderr)[-4000:],
            )
        ]
    return cases


def _parse_pytest_junit(path: Path) -> list[CheckCase]:
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped") is not None
        cases.append(
            CheckCase(
                suite="transform-tests",
                name=f"{case.get('classname', '')}::{case.get('name', '')}",
                passed=failure is None,
                skipped=skipped,
                message=(failure.get("message", "") if failure is not None else ""),
                output=(failure.text or "")[-4000:] if failure is not None else "",
                seconds=float(case.get("time") or 0),
            )
        )
    return cases


# --- renderings --------------------------------------------------------------------------------


def junit_xml(report: CheckReport) -> str:
    """JUnit XML (the testsuites/testsuite/testcase schema CI systems read)."""
    suites = report.suites()
    root = ET.Element(
        "testsuites",
        name=f"meshops check {report.project}",
        tests=str(len(report.cases)),
        failures=str(len(report.failures)),
        errors="0",
        skipped=str(sum(1 for c in report.cases if c.skipped)),
        time=f"{report.seconds:.3f}",
    )
    for name, cases in suites.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=name,
            tests=str(len(cases)),
            failures=str(sum(1 for c in cases if not c.passed and not c.skipped)),
            errors="0",
            skipped=str(sum(1 for c in cases if c.skipped)),
            time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"meshops.{name}",
                name=case.name,
                time=f"{case.seconds:.3f}",
            )
            if case.skipped:
                ET.SubElement(element, "skipped", message=case.message)
            elif not case.passed:
                failure = ET.SubElement(element, "failure", message=case.message, type=name)
                failure.text = case.output or case.message
            elif case.output:
                ET.SubElement(element, "system-out").text = case.output
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: CheckReport) -> str:
    """A summary for a pull-request comment."""
    plan = report.plan
    verdict = "✅ passed" if report.passed else f"❌ failed ({len(report.failures)})"
    commit = (report.git.commit or "")[:12]
    lines = [f"## meshops check: {verdict}", ""]
    if commit:
        lines += [f"Project `{report.project}` at `{commit}`.", ""]
    lines += ["| suite | passed | failed | skipped |", "| --- | ---: | ---: | ---: |"]
    for name, cases in report.suites().items():
        failed = sum(1 for c in cases if not c.passed and not c.skipped)
        skipped = sum(1 for c in cases if c.skipped)
        lines.append(f"| {name} | {len(cases) - failed - skipped} | {failed} | {skipped} |")
    if report.failures:
        lines += ["", "### Failures", ""]
        lines += [f"- **{c.suite}** `{c.name}`: {_cell(c.message)}" for c in report.failures]
    if plan is not None:
        lines += ["", "### Plan", ""]
        pending = plan.pending
        if not pending:
            lines.append("No changes: the platform matches the repository.")
        else:
            lines += ["| action | kind | name | details |", "| --- | --- | --- | --- |"]
            for c in pending:
                details = "; ".join(c.details)
                lines.append(f"| {c.action} | {c.kind} | `{c.name}` | {_cell(details)} |")
        breaking = [c for c in plan.changes if c.breaking]
        if breaking:
            lines += ["", "### Breaking changes", ""]
            for c in breaking:
                lines.append(
                    f"- `{c.name}` {c.published_version} → {c.version} ({c.version_bump}): "
                    + "; ".join(b.message for b in c.breaking)
                )
                if c.affected.consumers:
                    lines.append(f"  - consumers: {', '.join(c.affected.consumers)}")
                if c.affected.models:
                    lines.append(f"  - models: {', '.join(c.affected.models)}")
    return "\n".join(lines) + "\n"
