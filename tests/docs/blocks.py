"""Fenced code blocks of the README and docs/: extraction and the execution rules.

Executed languages: `bash`/`sh`/`shell` (run with `bash -e`), `console` (the `$ ` lines,
with `\\` continuations, run with `bash -e`; other lines are output and ignored) and
`python`/`py` (run with the venv's python). Anything else (`text`, `yaml`, `toml`, no
language) is not executed: that is how a page shows output, file contents or grammar.

The one exception: a block preceded by `<!-- not-executed: <reason> -->` is skipped, and the
test allows it ONLY for blocks whose commands are `make demo` and `make test` (they run the
whole build: install, the full demo, every test).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHON_LANGS = {"python", "py", "python3"}
EXECUTED = SHELL_LANGS | PYTHON_LANGS
NOT_EXECUTED = re.compile(r"<!--\s*not-executed:\s*(.+?)\s*-->")
ALLOWED_NOT_EXECUTED = {"make demo", "make test"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_executed: str | None  # the reason given in a not-executed comment

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def executed(self) -> bool:
        return self.lang in EXECUTED and self.not_executed is None

    def script(self) -> str:
        """What runs: the code, or for `console` the commands of the `$ ` lines."""
        if self.lang != "console":
            return self.code
        commands: list[str] = []
        continuing = False
        for line in self.code.splitlines():
            if continuing:
                commands.append(line)
            elif line.startswith("$ "):
                commands.append(line[2:])
            else:
                continue
            continuing = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"

    def commands(self) -> list[str]:
        """The commands of a shell block without comments and blank lines."""
        out = []
        for line in self.script().splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                out.append(command)
        return out


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def extract(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    previous = ""  # the last non-blank line before a fence
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1  # the closing fence
        marker = NOT_EXECUTED.search(previous)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                lang=match["lang"].lower(),
                code="\n".join(body) + "\n",
                not_executed=marker.group(1) if marker else None,
            )
        )
        previous = ""
    return blocks
