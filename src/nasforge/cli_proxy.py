"""`nasforge proxy ...`: score architectures with zero-cost proxies (thin shell over nasforge.api.proxy_score)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import config as cfgmod

proxy_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                        help="Zero-cost proxies: score untrained architectures (synflow, nwot, ...; no training).")
out = Console()


@proxy_app.command("list")
def list_proxies() -> None:
    """The proxies and the paper each follows."""
    from .proxies.service import available

    t = Table(show_header=True, box=None)
    t.add_column("proxy")
    t.add_column("follows")
    for name, paper in available():
        t.add_row(name, paper)
    out.print(t)


@proxy_app.command("score")
def score(
    archs: Optional[List[Path]] = typer.Argument(None, help="architecture files (arch.json / result.json) or run directories"),
    proxy: Optional[List[str]] = typer.Option(None, "--proxy", help="proxy name, repeatable (`nasforge proxy list`); 'ensemble' ranks the members"),
    member: Optional[List[str]] = typer.Option(None, "--member", help="ensemble member (repeatable; default synflow, nwot, jacob_cov)"),
    space: Optional[str] = typer.Option(None, help="with --sample: the space to draw random architectures from"),
    sample: int = typer.Option(0, help="also score N random architectures of --space"),
    sample_seed: int = typer.Option(0, help="seed of the random architectures"),
    dataset: str = typer.Option("fashion-mnist", help="dataset the batch is drawn from (the network is sized for it)"),
    data_root: Optional[Path] = typer.Option(None, help="folder holding the dataset files"),
    inputs: str = typer.Option("dataset", help="dataset | gaussian (N(0, 1) images: data-free)"),
    batch_size: int = typer.Option(64, help="images per batch"),
    seed: int = typer.Option(0, help="picks the batch and initialises the weights"),
    binary: str = typer.Option("real", help="binary networks: real (real-valued twin) | binarized (STE gradients)"),
    space_opt: Optional[List[str]] = typer.Option(None, "--space-opt", help="network scale key=value, e.g. C=8"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
    threads: Optional[int] = typer.Option(1, help="torch threads"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="also write the result JSON here; missing folders are created"),
) -> None:
    """Score architectures with zero-cost proxies; prints JSON (scores, protocol, CPU seconds)."""
    from .api import proxy_score

    res = proxy_score([str(a) for a in archs or []], proxy or ["nwot"], space=space, sample=sample,
                      sample_seed=sample_seed, dataset=dataset, data_root=str(data_root) if data_root else None,
                      inputs=inputs, batch_size=batch_size, seed=seed, binary=binary,
                      space_options=cfgmod.parse_assignments(space_opt), members=member or None, device=device,
                      threads=threads, out=str(out_file) if out_file else None)
    out.print_json(json.dumps(res, default=str))
