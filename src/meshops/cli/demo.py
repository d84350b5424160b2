"""`meshops demo`: the reference architecture end to end on a fresh embedded home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    home: Annotated[
        Path, typer.Option(help="Home to create (wiped first).", show_default=True)
    ] = Path(".meshops-demo"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic organisation.")] = 7,
    scale: Annotated[
        str, typer.Option(help="small (seconds, for tests) or full (realistic volumes).")
    ] = "full",
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the server, worker and UI running (Ctrl-C).")
    ] = False,
    port: Annotated[int | None, typer.Option(help="API/UI port (default: a free one).")] = None,
) -> None:
    """Run the whole platform end to end: products, access, features, training pipeline,
    serving, drift, alert, retraining, promotion, and the lineage from source to prediction."""
    from meshops.demo.run import run_demo

    if scale not in ("small", "full"):
        raise typer.BadParameter("use small or full", param_hint="--scale")
    run_demo(home, seed=seed, scale=scale, serve=serve, port=port)
