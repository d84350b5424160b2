"""Every code example of README.md and docs/**/*.md runs, for real.

Per Markdown file, its executed blocks (see `tests/docs/blocks.py`: ```bash, ```console,
```python) run in order, in one fresh temporary working directory with a fresh
`MESHOPS_HOME`, so a later block uses what an earlier one created (files, the home's
state). Shell blocks run with `bash -e`, Python blocks with the venv's python; the venv's
`bin/` is first on PATH and `.venv` in the working directory links to it, and `examples/`
is a copy of the repository's, so README commands written for the repository root work.

`MESHOPS_SERVER_PORT` is a free port: examples that start `meshops server &` use it (the
default 8080 when you copy them). A server one block starts in the background stays up
for the next blocks of the same file, as in a terminal; whatever is still running when
the file's last block ends is terminated.

Blocks marked `<!-- not-executed: ... -->` are skipped; that marker is accepted only on
the README's `make demo` / `make test` block (they create the venv and run the whole
build and test suite), `test_not_executed_only_for_make_demo_and_test` enforces it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.docs.blocks import ALLOWED_NOT_EXECUTED, ROOT, Block, doc_files, extract

VENV_BIN = Path(sys.executable).parent
BLOCK_TIMEOUT = 180


def _files_with_examples() -> list[Path]:
    return [p for p in doc_files() if any(b.executed for b in extract(p))]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHOPS_")}
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            "MESHOPS_HOME": str(tmp / "home"),
            "MESHOPS_CREDENTIALS": str(tmp / "credentials.toml"),
            "MESHOPS_SERVER_PORT": str(free_port()),
            "XDG_CONFIG_HOME": str(tmp / "config"),
            "PYTHONPATH": str(tmp / "work"),
            "COLUMNS": "120",
            "GIT_AUTHOR_NAME": "Docs Test",
            "GIT_AUTHOR_EMAIL": "docs@example.com",
            "GIT_COMMITTER_NAME": "Docs Test",
            "GIT_COMMITTER_EMAIL": "docs@example.com",
        }
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def _workdir(tmp: Path) -> Path:
    work = tmp / "work"
    work.mkdir()
    (work / ".venv").symlink_to(VENV_BIN.parent)
    shutil.copytree(
        ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    return work


def _run(
    block: Block, work: Path, scripts: Path, env: dict[str, str], started: list[int]
) -> tuple[float, str]:
    if block.lang in ("python", "py", "python3"):
        script = scripts / f"{block.path.stem}_line{block.line}.py"
        script.write_text(block.script(), encoding="utf-8")
        argv = [str(VENV_BIN / "python"), str(script)]
    else:
        argv = ["bash", "-e", "-c", block.script()]
    start = time.perf_counter()
    # Output goes to a file, not a pipe: a server the block starts in the background keeps
    # its inherited stdout open, and reading a pipe to its end would wait for that server.
    log_path = scripts / f"{block.path.stem}_line{block.line}.log"
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            argv,
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(proc.pid)  # its process group: whatever it leaves running
        try:
            proc.wait(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            output = log_path.read_text(encoding="utf-8", errors="replace")
            pytest.fail(f"{block.where}: timed out after {BLOCK_TIMEOUT}s\n{output[-4000:]}")
    output = log_path.read_text(encoding="utf-8", errors="replace")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        pytest.fail(
            f"{block.where} ({block.lang}) exited with {proc.returncode}:\n"
            f"--- block ---\n{block.script()}--- output (last 4000 chars) ---\n{output[-4000:]}"
        )
    return elapsed, output


@pytest.mark.parametrize(
    "doc", _files_with_examples(), ids=lambda p: str(p.relative_to(ROOT)).replace("/", "_")
)
def test_examples_run(doc: Path, tmp_path: Path) -> None:
    work, scripts = _workdir(tmp_path), tmp_path / "blocks"
    scripts.mkdir()
    env = _env(tmp_path)
    timings, started = [], []
    try:
        for block in extract(doc):
            if block.executed:
                elapsed, _ = _run(block, work, scripts, env, started)
                timings.append(f"{block.where} {elapsed:.1f}s")
    finally:
        # A server an example started in the background (and did not stop) ends here.
        for pgid in started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
    print("\n".join(timings))


def test_not_executed_only_for_make_demo_and_test() -> None:
    for doc in doc_files():
        for block in extract(doc):
            if block.not_executed is None:
                continue
            assert block.lang in ("bash", "console", "sh", "shell"), block.where
            commands = set(block.commands())
            assert commands and commands <= ALLOWED_NOT_EXECUTED, (
                f"{block.where}: only `make demo` and `make test` may be marked not-executed "
                f"(they run the whole build); make {sorted(commands - ALLOWED_NOT_EXECUTED)} "
                "runnable or use a ```text block for output"
            )


def test_readme_starts_with_make_demo_and_make_test() -> None:
    first = next(b for b in extract(ROOT / "README.md") if b.lang not in ("text", ""))
    assert first.commands() == ["make demo", "make test"], first.where
    assert first.not_executed


def test_extraction_rules(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```console\n$ echo one \\\n    two\none two\n$ true  # comment\n```\n\n"
        "<!-- not-executed: runs the whole build -->\n```bash\nmake demo\n```\n\n"
        "```text\n$ not run\n```\n",
        encoding="utf-8",
    )
    blocks = extract(page)
    assert [b.lang for b in blocks] == ["console", "bash", "text"]
    assert blocks[0].script() == "echo one \\\n    two\ntrue  # comment\n"
    assert blocks[0].commands() == ["echo one \\", "two", "true"]
    assert blocks[1].not_executed == "runs the whole build" and not blocks[1].executed
    assert not blocks[2].executed
