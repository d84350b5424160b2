"""`meshops ... --help` (issue #19): every command and parameter described, flags shown as
flags, usage lines without `{name}`, commands grouped by area in whole sentences, and
`server --help` naming its defaults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from meshops.cli.help import reflow, summary
from meshops.cli.main import PANELS, full_command, lazy_group


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, command) of every command and group under `group`."""
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(getattr(command, "commands", None), dict):
            yield from commands(command, (*path, name))


def help_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    lazy_group().main([*args, "--help"], prog_name="meshops", standalone_mode=False)
    return capsys.readouterr().out


def test_every_command_and_parameter_is_described() -> None:
    undescribed = []
    for path, command in commands(full_command()):
        if not (command.help or "").strip():
            undescribed.append(" ".join(path))
        undescribed += [
            f"{' '.join(path)} {param.name}"
            for param in command.params
            if not (getattr(param, "help", None) or "").strip()
        ]
    assert undescribed == []


def test_every_listing_line_is_a_whole_sentence() -> None:
    cut = [
        " ".join(path)
        for path, command in commands(full_command())
        if not re.search(r"[.)`]$", command.short_help or "") or "\n" in command.short_help
    ]
    assert cut == []


def test_help_pages_show_flags_as_flags_and_usage_without_braces(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    pages = {
        "product publish": help_of(["product", "publish"], capsys),
        "runs list": help_of(["runs", "list"], capsys),
        "runs show": help_of(["runs", "show"], capsys),
        "models alias history": help_of(["models", "alias", "history"], capsys),
        "meshops": help_of([], capsys),
    }
    for name, page in pages.items():
        assert not re.search(r"<(bool|str|int|path|float)>", page), (name, page)
        usage = next(line for line in page.splitlines() if "Usage:" in line)
        assert "{" not in usage, (name, usage)
    assert "Usage: meshops product publish [OPTIONS] FOLDER" in pages["product publish"]
    assert (
        "Usage: meshops models alias history [OPTIONS] NAME [ALIAS]"
        in (pages["models alias history"])
    )
    runs_list = pages["runs list"]
    assert re.search(r"--json\s+Print JSON", runs_list)  # no value after a flag
    assert re.search(r"--max-results\s+-n\s+INTEGER", runs_list)


def test_every_help_page_renders_without_type_placeholders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path, command in commands(full_command()):
        if isinstance(getattr(command, "commands", None), dict):
            continue
        page = help_of(list(path), capsys)
        assert not re.search(r"<(bool|str|int|path|float|list\[str\])>", page), path
        assert "{" not in next(line for line in page.splitlines() if "Usage:" in line), path


def test_top_level_help_groups_commands_by_area(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    page = help_of([], capsys)
    titles = re.findall(r"╭─ (.+?) ─", page)
    assert titles == ["Options", *PANELS]  # no ungrouped "Commands" panel
    listed = {name for names in PANELS.values() for name in names}
    assert listed == set(full_command().commands)
    assert max(map(len, page.splitlines())) <= 80


def test_server_help_names_its_defaults_and_serve_is_told_apart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    server = " ".join(help_of(["server"], capsys).split())
    assert "8080" in server and "$MESHOPS_SERVER_PORT" in server
    assert "--log-format [text|json]" in server and "$MESHOPS_LOG_FORMAT" in server
    assert "meshops serve" in server  # points to the other one
    top = " ".join(help_of([], capsys).split())
    assert "server Run the platform's API server" in top
    assert "serve Serve model endpoint(s) for inference alone" in top
    assert "meshops server" in " ".join(help_of(["serve"], capsys).split())


@pytest.mark.parametrize(
    ("text", "flowed"),
    [
        (
            "One line\nwrapped here.\n\nSecond\nparagraph.",
            "One line wrapped here.\n\nSecond paragraph.",
        ),
        ("Items:\n- one\n- two", "Items:\n- one\n- two"),
    ],
)
def test_docstrings_are_reflowed(text: str, flowed: str) -> None:
    assert reflow(text) == flowed


def test_summary_is_the_first_whole_sentence() -> None:
    text = "Rerun a run (exit 1 when\nthey differ). A tracking run stands for it.\n\nMore."
    assert summary(text) == "Rerun a run (exit 1 when they differ)."
    assert summary("Runs matching e.g. 'metrics.x' here.") == "Runs matching e.g. 'metrics.x' here."


def test_server_refuses_an_unknown_log_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli import run_main

    proc = run_main(["server", "--log-format", "xml"], monkeypatch, capsys)
    assert proc.returncode == 2
    assert "xml" in proc.stderr and "text" in proc.stderr and "json" in proc.stderr
