"""CLI start cost: the lazy `meshops` group, lazy SDK areas, lazy heavy imports (B10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshops.cli.main import full_command, lazy_group
from tests.support.cli import run_cli


def _output(command: Any, args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    command.main(args, prog_name="meshops", standalone_mode=False)
    return capsys.readouterr().out


def test_lazy_group_prints_the_help_the_full_app_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    full = full_command()
    for args in (["--help"], ["catalog", "--help"], ["product", "--help"], ["serve", "--help"]):
        assert _output(lazy_group(), args, capsys) == _output(full, args, capsys)


def test_lazy_group_builds_only_the_command_that_runs(capsys: pytest.CaptureFixture[str]) -> None:
    full = full_command()
    group = lazy_group()
    assert group.list_commands(None) == full.list_commands(None)  # type: ignore[arg-type,attr-defined]
    import meshops

    assert _output(group, ["version"], capsys).strip() == meshops.__version__
    assert set(group.__class__.__dict__) >= {"get_command", "list_commands", "format_help"}


def test_unknown_command_exits_2_with_a_message(tmp_path: Path) -> None:
    proc = run_cli("no-such-command", home=tmp_path / "home")
    assert proc.returncode == 2
    assert "No such command" in proc.stderr


def test_catalog_search_imports_no_arrow_duckdb_or_other_areas(tmp_path: Path) -> None:
    """`meshops catalog search` builds only the mesh area and imports no data engine of its
    own, nor the policy documents (only a read plans masks). The home exists, as in B10 after
    its warm-up: creating one runs migrations, which import more."""
    assert run_cli("db", "upgrade", home=tmp_path / "home").returncode == 0
    code = (
        "import sys\n"
        "sys.argv = ['meshops', 'catalog', 'search', 'x', '--json']\n"
        "from meshops.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('pyarrow', 'pandas', 'meshops.mesh.builds', "
        "'meshops.mesh.specs', 'meshops.tracking.service', 'meshops.registry.service', "
        "'meshops.features.service', 'meshops.pipelines.service', "
        "'meshops.serving.service', 'meshops.monitoring.service', "
        "'meshops.governance.documents') if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"MESHOPS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout


def test_platform_builds_areas_on_first_use(tmp_path: Path) -> None:
    from meshops.client import connect

    with connect(home=tmp_path / "home") as platform:
        assert "tracking" not in platform.__dict__
        assert "mesh" not in platform.__dict__
        assert platform.mesh.search("x").total == 0
        assert "mesh" in platform.__dict__
        assert platform.mesh is platform.mesh  # built once
        platform.flush()  # flushes only the areas that were built
        assert "tracking" not in platform.__dict__
        # Buffered work is still flushed at close once the area is used.
        platform.tracking.start_run("exp", capture_environment=False)
        assert "tracking" in platform.__dict__


def test_lazy_module_imports_on_first_attribute() -> None:
    from meshops.kernel.lazy import lazy_module

    name = "meshops.kernel.openlineage"
    sys.modules.pop(name, None)
    proxy = lazy_module(name)
    assert name not in sys.modules
    assert "not loaded" in repr(proxy)
    assert callable(proxy.run_event)
    assert name in sys.modules


@pytest.mark.parametrize("args", [["--help"], ["catalog", "--help"]])
def test_help_works_as_a_program(args: list[str], tmp_path: Path) -> None:
    proc = run_cli(*args, home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
