"""`nasforge latency ...`: build, show and use per-device latency tables (thin shell over nasforge.hardware.service)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import config as cfgmod

latency_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                          help="Latency lookup tables for named devices: build, show, predict/measure an arch.")
out = Console()

Device = typer.Option(..., "--device", help="target device (see `nasforge latency devices`); not where torch runs")
Space = typer.Option("mobile", "--space", help="layer-wise space (mobile, fbnet)")
SpaceOpt = typer.Option(None, "--space-opt", help="space option key=value (repeatable)")
Tables = typer.Option(None, "--tables", help="benchmark tables folder (HELP devices)")
Cache = typer.Option(None, "--cache", help="LUT cache JSON file (default ~/.cache/nasforge/latency/<device>.json)")
#: the input the table is for: the dataset the search will read (its shape is read from it), or a shape
INPUT = "the search's input; default: Fashion-MNIST's 1x28x28, 10 classes (or use --dataset)"
Dataset = typer.Option(None, "--dataset", help="the dataset the search reads: the table is built for its image "
                       "shape and classes (instead of --in-channels/--resolution/--num-classes)")
DataRoot = typer.Option(None, "--data-root", help="folder holding the dataset files (with --dataset)")
DataOpt = typer.Option(None, "--data-opt", help="dataset option key=value (with --dataset)")
Resolution = typer.Option(None, "--resolution", help=f"input resolution; {INPUT}")
InChannels = typer.Option(None, "--in-channels", help=f"input channels; {INPUT}")
NumClasses = typer.Option(None, "--num-classes", help=f"classes of the classifier head; {INPUT}")


def _emit(obj) -> None:
    out.print_json(json.dumps(obj, default=str))


@latency_app.command("devices")
def devices() -> None:
    """List the target devices."""
    from .hardware.service import list_devices

    t = Table(show_header=True, box=None)
    for col in ("device", "kind", "spaces", "what"):
        t.add_column(col)
    for name, d in list_devices().items():
        t.add_row(name, d["kind"], d["spaces"], d["description"])
    out.print(t)


@latency_app.command("build")
def build(device: str = Device, space: str = Space, space_opt: Optional[List[str]] = SpaceOpt,
          dataset: Optional[str] = Dataset, data_root: Optional[Path] = DataRoot,
          data_opt: Optional[List[str]] = DataOpt, resolution: Optional[int] = Resolution,
          in_channels: Optional[int] = InChannels, num_classes: Optional[int] = NumClasses,
          tables: Optional[Path] = Tables, cache: Optional[Path] = Cache,
          calibrate: int = typer.Option(0, help="local devices: also fit a*LUT+b on N random networks measured end "
                                        "to end"),
          repeats: Optional[int] = typer.Option(None, help="local devices: timed replicates per entry (the median "
                                                "is kept) [default: 7]"),
          number: Optional[int] = typer.Option(None, help="local devices: calls per replicate [default: 10]"),
          warmup: Optional[int] = typer.Option(None, help="local devices: untimed calls first [default: 10]"),
          seed: int = typer.Option(0, help="seed of the --calibrate networks and of a HELP table fit")) -> None:
    """Build or update the table of a space on a device (measured here, or fitted from HELP)."""
    from .hardware.service import build_table

    _emit(build_table(device, space, cfgmod.parse_assignments(space_opt), in_channels=in_channels,
                      resolution=resolution, num_classes=num_classes, dataset=dataset,
                      data_root=str(data_root) if data_root else None,
                      dataset_options=cfgmod.parse_assignments(data_opt), tables=str(tables) if tables else None,
                      cache=str(cache) if cache else None, calibrate=calibrate, seed=seed, warmup=warmup,
                      repeats=repeats, number=number))


@latency_app.command("show")
def show(device: str = Device, space: str = Space, space_opt: Optional[List[str]] = SpaceOpt,
         dataset: Optional[str] = Dataset, data_root: Optional[Path] = DataRoot,
         data_opt: Optional[List[str]] = DataOpt, resolution: Optional[int] = Resolution,
         in_channels: Optional[int] = InChannels, num_classes: Optional[int] = NumClasses,
         tables: Optional[Path] = Tables, cache: Optional[Path] = Cache,
         as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Print the stored table (ms per layer and op); measures nothing."""
    from .hardware.service import show_table

    res = show_table(device, space, cfgmod.parse_assignments(space_opt), in_channels=in_channels,
                     resolution=resolution, num_classes=num_classes, dataset=dataset,
                     data_root=str(data_root) if data_root else None,
                     dataset_options=cfgmod.parse_assignments(data_opt), tables=str(tables) if tables else None,
                     cache=str(cache) if cache else None)
    if as_json:
        _emit(res)
        return
    shape = res["input"]
    t = Table(title=f"{device} / {space} for {shape['in_channels']}x{shape['resolution']}x{shape['resolution']} "
                    f"inputs, {shape['num_classes']} classes: ms per op (fixed {res['fixed_ms']:.4g} ms; calibration "
                    f"{res['calibration']})", show_header=True, box=None)
    t.add_column("layer")
    t.add_column("in -> out, stride, res")
    t.add_column("fastest ops (ms)")
    for layer in res["layers"]:
        ops = sorted(layer["ms"].items(), key=lambda kv: kv[1])
        t.add_row(str(layer["layer"]), f"{layer['C_in']}->{layer['C_out']}, s{layer['stride']}, {layer['resolution']}",
                  "  ".join(f"{o} {v:.3g}" for o, v in ops))
    out.print(t)


@latency_app.command("predict")
def predict(arch_file: Path = typer.Argument(..., help="arch.json or result.json"), device: str = Device,
            space: Optional[str] = typer.Option(None, help="expected space of the architecture (checked)"),
            tables: Optional[Path] = Tables, cache: Optional[Path] = Cache,
            measure: bool = typer.Option(False, "--measure", help="also time the whole network here (local devices)"),
            repeats: Optional[int] = typer.Option(None, help="local devices: timed replicates per entry (the median "
                                                  "is kept) [default: 7]"),
            number: Optional[int] = typer.Option(None, help="local devices: calls per replicate [default: 10]"),
            warmup: Optional[int] = typer.Option(None, help="local devices: untimed calls first [default: 10]")) -> None:
    """Latency of an architecture on a device: LUT raw and calibrated, optionally measured end to end."""
    from .hardware.service import predict_arch

    _emit(predict_arch(arch_file, device, space=space, tables=str(tables) if tables else None,
                       cache=str(cache) if cache else None, measure=measure, warmup=warmup, repeats=repeats,
                       number=number))
