"""`nasforge` command line: a thin typer shell over nasforge.api.

Every UserError becomes one line on stderr and exit code 2 (3 for a diverged training run); usage
errors from the parser are folded to one line as well.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from . import api
from . import config as cfgmod
from . import progress
from .errors import ConfigError, UserError
from .runs.guard import RunInterrupted

# plain click help: switches shown as switches (no "<bool>"), defaults shown ([default: ...])
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"show_default": True},
                  help="Neural architecture search methods side by side on the same spaces, data and budgets.")


def _d(text: str, key: str, table: dict | None = None) -> str:
    """Help text with the config default of `key` (flags default to None: "not given, use the config")."""
    value = (table or cfgmod.SEARCH_DEFAULTS).get(key)
    return f"{text} [default: {'all' if value is None else value}]"
def _t(text: str, key: str) -> str:
    """Help text with the declared default of training option `key`."""
    return f"{text} [default: {api.train_default(key)}]"


out = Console()
err = Console(stderr=True)

RunRoot = typer.Option("runs", "--out", help="folder that receives the run directory (created if missing)")
#: every file an --out/--csv names is written the same way: missing folders above it are created (like the run
#: folder of --out above), after a check that they can be; the help says so rather than creating them silently
CREATES = "; missing folders are created"
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: CUDA, else MPS, else CPU)"
PRECISION_HELP = ("auto (default: bf16 where the device runs it natively and the space declares it pays, else fp32; "
                  "recorded in the run) | fp32 | bf16 | fp16 (autocast; fp16 with gradient scaling)")
MEMORY_FORMAT_HELP = ("auto (default: channels_last where the space declares it pays) | channels_last | contiguous; "
                      "the previous path: --precision fp32 with contiguous (darts/bats spaces: channels_last)")
COMPILE_HELP = "off (default) | probe (torch.compile when a timed probe shows >= 1.2x over the run) | on"
NPROC_HELP = "data-parallel processes on this machine, started through torch.distributed.run (= torchrun)"
SYNC_BN_HELP = "data parallel: BatchNorm statistics over the global batch"
# options shared by the commands that start a run (search, train): declared once, like RunRoot
ConfigFile = typer.Option(None, help="YAML config; flags override it")
Resume = typer.Option(None, help="continue an interrupted run directory")
RunName = typer.Option(None, help="run directory name")
Quiet = typer.Option(False, "--quiet", help="no progress bars")
Device = typer.Option(None, help=DEVICE_HELP)
Precision = typer.Option(None, help=PRECISION_HELP)
MemoryFormat = typer.Option(None, "--memory-format", help=MEMORY_FORMAT_HELP)
SyncBn = typer.Option(False, "--sync-bn", help=SYNC_BN_HELP)
Nproc = typer.Option(None, help=NPROC_HELP)
_ARGV: list[str] = []  # the command line, for --nproc to relaunch it under torch.distributed.run
_NPROC: list[int | None] = [None]  # this command's --nproc


def _maybe_relaunch(nproc: Optional[int], check) -> dict[str, Any] | None:
    """--nproc N: check the command once here (`check()`: the API call with check_only=True, so a bad input
    is one line, not N copies and a torchrun traceback), then run this same command as N processes through
    torch.distributed.run, and exit with its code. Returns the stored result, starting nothing, when the check
    found a finished run to --resume."""
    if nproc is None:
        return None
    from . import distributed

    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if distributed.launched() or nproc == 1:
        return None  # already under torchrun, or nothing to launch
    checked = check()
    if not checked.get("checked"):
        return checked  # a finished run: nothing to start
    argv, skip = [], False
    for a in _ARGV:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        argv.append(a)
    sys.exit(distributed.relaunch(nproc, argv))


def _start(quiet: bool, nproc: Optional[int]) -> None:
    """What every run command does first: progress bars (rank 0 only under torchrun) and its --nproc."""
    progress.set_enabled(not quiet and _rank0())
    _NPROC[0] = nproc


def _fresh(defaults: dict[str, Any], config: Optional[Path], flags: dict[str, Any], run_root: Path,
           name: Optional[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, API keywords) of a new run: `defaults`, then the --config YAML, then the flags."""
    file_cfg = cfgmod.load_yaml(config) if config else None
    return cfgmod.resolve(defaults, file_cfg, flags), {"run_root": run_root, "run_name": name}


def _launch(fn, cfg: dict[str, Any] | None, kw: dict[str, Any], nproc: Optional[int]) -> dict[str, Any]:
    """Run `fn` (api.search / api.train) here, or with --nproc N check it once and relaunch the command as N
    processes (_maybe_relaunch); returns its result (a finished run's stored one on --resume)."""
    done = _maybe_relaunch(nproc, lambda: fn(cfg, check_only=True, nproc=nproc, **kw))
    return done if done is not None else _run(fn, cfg, **kw)


def _emit(result: dict[str, Any], keys: list[str] | None = None) -> None:
    if not _rank0():
        return  # under torchrun only rank 0 prints the result
    shown = {k: result[k] for k in keys if k in result} if keys else result
    if isinstance(shown.get("optimised"), dict):  # a summary: 6 significant digits (result.json keeps all)
        shown = {**shown, "optimised": _rounded(shown["optimised"])}
    out.print_json(json.dumps(shown, default=str))


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


def _kv(items: Optional[List[str]]) -> dict[str, Any]:
    return cfgmod.parse_assignments(items)


def _note_ignored_on_resume(command: str, resume: Path, given: dict[str, Any]) -> None:
    """--resume continues a run with the config stored in it: say which other flags are therefore ignored
    (once: by rank 0 of a data-parallel run, not by the --nproc parent that starts it)."""
    if not _rank0() or (_NPROC[0] or 1) > 1 and "RANK" not in os.environ:
        return
    ignored = [f"--{k.replace('_', '-')}" for k, v in given.items() if v not in (None, False, [], ())]
    if ignored:
        print(f"note: {command} --resume continues {resume} with its stored config; ignored: {', '.join(ignored)}",
              file=sys.stderr)


def _run(fn, *args: Any, **kwargs: Any) -> Any:
    """Call the API; Ctrl-C inside a run prints one line naming the run directory to resume, exit code 130
    (typer would swallow the KeyboardInterrupt into a bare return code)."""
    try:
        return fn(*args, **kwargs)
    except RunInterrupted as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)


def _rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


@app.command()
def search(
    space: Optional[str] = typer.Option(None, help=_d("search space (see `nasforge list`)", "space")),
    method: Optional[str] = typer.Option(None, help=_d("strategy (see `nasforge list`)", "method")),
    dataset: Optional[str] = typer.Option(None, help=_d("dataset name", "dataset")),
    data_root: Optional[Path] = typer.Option(None, help="folder holding the dataset files"),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="dataset option key=value, e.g. resolution=64 (image-folder) or num_classes=5 (synthetic)"),
    download: bool = typer.Option(False, "--download", help="fetch Fashion-MNIST/MNIST if missing"),
    epochs: Optional[int] = typer.Option(None, help="supernet epochs (one-shot strategies)"),
    trials: Optional[int] = typer.Option(None, help="architectures to evaluate (multi-trial strategies)"),
    seconds: Optional[float] = typer.Option(None, help="time budget in seconds (counted by --clock)"),
    clock: Optional[str] = typer.Option(None, help="what --seconds counts: wall (default) or cpu (this process's "
                                        "CPU seconds: equal budgets stay equal on a busy machine)"),
    subset: Optional[int] = typer.Option(None, help=_d("training images used by the search (split in halves)", "subset")),
    train_portion: Optional[float] = typer.Option(None, help="search-train share of the subset (default 0.5)"),
    batch_size: Optional[int] = typer.Option(None, help=_d("search batch size", "batch_size")),
    seed: Optional[int] = typer.Option(None, help=_d("random seed", "seed")),
    estimator: Optional[str] = typer.Option(None, help="multi-trial only: scratch | table | proxy"),
    est_opt: Optional[List[str]] = typer.Option(None, "--estimator-opt", help="estimator option key=value (repeatable), e.g. proxy=synflow"),
    executor: Optional[str] = typer.Option(None, help=_d("where trials run: local | ray", "executor")),
    workers: Optional[int] = typer.Option(None, help="ray: parallel trials"),
    ray_address: Optional[str] = typer.Option(None, help="ray: address of an existing cluster"),
    gpus_per_trial: Optional[float] = typer.Option(None, help="ray: GPUs per trial (fractions share a GPU)"),
    tables: Optional[Path] = typer.Option(None, help="benchmark tables folder (NB201, NAS-Bench-Macro)"),
    table_dataset: Optional[str] = typer.Option(None, help=_d("the table's data set (NB201: cifar10, cifar100, "
                                                              "imagenet16-120)", "table_dataset")),
    retrain_epochs: Optional[int] = typer.Option(None, help="retrain the found architecture for N epochs"),
    retrain_subset: Optional[int] = typer.Option(None, help=_d("training images of the retraining", "retrain_subset")),
    test_subset: Optional[int] = typer.Option(None, help=_d("test images the retrained network is tested on",
                                                            "test_subset")),
    teacher: Optional[Path] = typer.Option(None, help="finished train run distilled into search (bats) and retraining"),
    threads: Optional[int] = typer.Option(None, help=_d("torch threads (also inside trials)", "threads")),
    hp: Optional[List[str]] = typer.Option(None, "--set", help="strategy hyperparameter key=value (repeatable; keys: `nasforge list METHOD`)"),
    space_opt: Optional[List[str]] = typer.Option(None, "--space-opt", help="space option key=value, e.g. C=8 (keys: `nasforge list SPACE`)"),
    retrain_opt: Optional[List[str]] = typer.Option(None, "--retrain-opt", help="final-network option key=value"),
    config: Optional[Path] = ConfigFile,
    resume: Optional[Path] = Resume,
    name: Optional[str] = RunName,
    run_root: Path = RunRoot,
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    precision: Optional[str] = Precision,
    memory_format: Optional[str] = MemoryFormat,
    sync_bn: bool = SyncBn,
    nproc: Optional[int] = Nproc,
) -> None:
    """Search an architecture; writes a run directory with result.json."""
    _start(quiet, nproc)
    if resume is not None:
        _note_ignored_on_resume("search", resume, {
            "space": space, "method": method, "dataset": dataset, "data_root": data_root, "data_opt": data_opt, "download": download,
            "epochs": epochs, "trials": trials, "seconds": seconds, "clock": clock, "subset": subset,
            "train_portion": train_portion,
            "batch_size": batch_size, "seed": seed, "estimator": estimator, "executor": executor, "workers": workers,
            "ray_address": ray_address, "tables": tables, "table_dataset": table_dataset,
            "retrain_epochs": retrain_epochs,
            "retrain_subset": retrain_subset, "test_subset": test_subset,
            "set": hp, "space_opt": space_opt, "retrain_opt": retrain_opt, "config": config, "name": name,
            "precision": precision, "memory_format": memory_format,
            "estimator_opt": est_opt, "gpus_per_trial": gpus_per_trial, "teacher": teacher, "sync_bn": sync_bn,
            "table_dataset": table_dataset})
        cfg, kw = _drop_none({"device": device, "threads": threads}) or None, {"resume": resume}
    else:
        flags = _drop_none({
            "space": space, "method": method, "dataset": dataset, "data_root": str(data_root) if data_root else None,
            "dataset_options": _kv(data_opt),
            "download": download or None, "subset": subset, "train_portion": train_portion,
            "batch_size": batch_size, "seed": seed,
            "estimator": estimator, "executor": executor, "tables": str(tables) if tables else None,
            "table_dataset": table_dataset,
            "threads": threads, "hparams": _kv(hp), "space_options": _kv(space_opt),
            "estimator_options": _kv(est_opt), "teacher": str(teacher) if teacher else None,
            "retrain_space_options": _kv(retrain_opt),
            "budget": _drop_none({"epochs": epochs, "trials": trials, "seconds": seconds, "clock": clock}),
            "executor_options": _drop_none({"workers": workers, "address": ray_address,
                                            "gpus_per_trial": gpus_per_trial}),
            "device": device, "precision": precision, "memory_format": memory_format, "sync_bn": sync_bn or None,
            "retrain_subset": retrain_subset, "test_subset": test_subset,
        })
        if retrain_epochs is not None:
            flags["retrain"] = {"epochs": retrain_epochs}
        cfg, kw = _fresh(cfgmod.SEARCH_DEFAULTS, config, flags, run_root, name)
        if test_subset is not None and not cfg.get("retrain"):  # the API tolerates it (configs shared with train)
            raise ConfigError("--test-subset applies only with retraining (--retrain-epochs N or retrain: in the "
                              "config)")
    res = _launch(api.search, cfg, kw, nproc)
    _emit(res, ["arch", "space", "method", "optimised", "stopped", "note", "trials", "table", "retrain", "device",
                "precision", "cost", "run_dir", "arch_file"])
    if res.get("note") and _rank0():
        print(f"note: {res['note']}", file=sys.stderr)


@app.command()
def train(
    arch: Optional[str] = typer.Option(None, help=_d("a model name (baseline, resnet20, ...: `nasforge list`) or an "
                                                    "architecture JSON file (a search's arch.json / result.json, or "
                                                    "its run directory)", "arch", cfgmod.TRAIN_DEFAULTS)),
    dataset: Optional[str] = typer.Option(None, help=_d("dataset name", "dataset", cfgmod.TRAIN_DEFAULTS)),
    data_root: Optional[Path] = typer.Option(None, help="folder holding the dataset files"),
    data_opt: Optional[List[str]] = typer.Option(None, "--data-opt", help="dataset option key=value, e.g. resolution=64 (image-folder) or num_classes=5 (synthetic)"),
    download: bool = typer.Option(False, "--download", help="fetch Fashion-MNIST/MNIST if missing"),
    epochs: Optional[int] = typer.Option(None, help=_t("training epochs", "epochs")),
    batch_size: Optional[int] = typer.Option(None, help=_t("batch size", "batch_size")),
    lr: Optional[float] = typer.Option(None, help=_t("initial learning rate (cosine decay)", "lr")),
    optimizer: Optional[str] = typer.Option(None, help=_t(" | ".join(api.train_choices("optimizer")), "optimizer")),
    seed: Optional[int] = typer.Option(None, help=_t("random seed", "seed")),
    subset: Optional[int] = typer.Option(None, help="training images (default: all)"),
    test_subset: Optional[int] = typer.Option(None, help="test images (default: all)"),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: torch's own)"),
    teacher: Optional[Path] = typer.Option(None, help="finished train run to distil from (same dataset)"),
    train_opt: Optional[List[str]] = typer.Option(None, "--set", help="training option key=value (repeatable; keys: `nasforge list training`)"),
    space_opt: Optional[List[str]] = typer.Option(None, "--space-opt", help="network scale key=value, e.g. C=16"),
    config: Optional[Path] = ConfigFile,
    resume: Optional[Path] = Resume,
    name: Optional[str] = RunName,
    run_root: Path = RunRoot,
    quiet: bool = Quiet,
    device: Optional[str] = Device,
    precision: Optional[str] = Precision,
    memory_format: Optional[str] = MemoryFormat,
    compile: Optional[str] = typer.Option(None, "--compile", help=COMPILE_HELP),
    sync_bn: bool = SyncBn,
    nproc: Optional[int] = Nproc,
) -> None:
    """Train an architecture from scratch on the full training set and test it."""
    _start(quiet, nproc)
    if resume is not None:
        _note_ignored_on_resume("train", resume, {
            "arch": arch, "dataset": dataset, "data_root": data_root, "data_opt": data_opt, "download": download, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "seed": seed, "subset": subset,
            "test_subset": test_subset, "set": train_opt, "space_opt": space_opt,
            "config": config, "name": name, "precision": precision, "memory_format": memory_format,
            "compile": compile, "teacher": teacher, "sync_bn": sync_bn})
        cfg, kw = _drop_none({"device": device, "threads": threads}) or None, {"resume": resume}
    else:
        train_cfg = _drop_none({"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                                "seed": seed, **_kv(train_opt)})
        flags = _drop_none({"arch": arch, "dataset": dataset, "data_root": str(data_root) if data_root else None,
                            "dataset_options": _kv(data_opt),
                            "download": download or None, "subset": subset, "test_subset": test_subset,
                            "threads": threads, "train": train_cfg, "space_options": _kv(space_opt),
                            "teacher": str(teacher) if teacher else None,
                            "device": device, "precision": precision, "memory_format": memory_format,
                            "compile": compile, "sync_bn": sync_bn or None})
        cfg, kw = _fresh(cfgmod.TRAIN_DEFAULTS, config, flags, run_root, name)
    res = _launch(api.train, cfg, kw, nproc)
    _emit(res, ["model", "space", "arch", "test_accuracy", "params", "params_aux", "flops", "bops", "ops", "stages",
                "epochs", "images_per_s", "cost", "run_dir"])


@app.command()
def evaluate(run_dir: Path = typer.Argument(..., help="a finished train run (or search run with retraining)"),
             test_subset: Optional[int] = typer.Option(None, help="test images (default: all)"),
             device: str = typer.Option("auto", help=DEVICE_HELP),
             precision: str = typer.Option("auto", help="auto (default: as the run trained) | fp32 | bf16 | fp16"),
             threads: Optional[int] = typer.Option(None, help="torch threads (default: torch's own)")) -> None:
    """Test accuracy of a trained model."""
    _emit(api.evaluate(run_dir, test_subset=test_subset, device=device, precision=precision, threads=threads))


@app.command()
def export(run_dir: Path = typer.Argument(..., help="a finished train run"),
           onnx_file: Path = typer.Option(Path("model.onnx"), "--out", help="ONNX file to write" + CREATES),
           opset: int = typer.Option(17, help="ONNX opset version"),
           device: str = typer.Option("cpu", help="checked only: export always runs on the CPU in fp32")) -> None:
    """Export a trained model to ONNX, checked in onnxruntime against PyTorch."""
    _emit(api.export(run_dir, onnx_file, opset=opset, device=device))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory (finished, or in progress: what exists so far)"),
           out_file: Optional[Path] = typer.Option(None, "--out", help="HTML file (default: RUN_DIR/report.html)" + CREATES)) -> None:
    """One run as a self-contained HTML page: config, drawn architecture, curves, diagnostics, trials, cost."""
    res = api.report(run_dir, out_file)
    for w in res["warnings"]:
        err.print(f"warning: {w}", highlight=False, soft_wrap=True)
    out.print(res["report"], highlight=False, soft_wrap=True)


@app.command()
def compare(run_dirs: List[Path] = typer.Argument(..., help="run directories (any methods, spaces, seeds)"),
            out_file: Path = typer.Option(Path("compare.html"), "--out", help="HTML file to write" + CREATES),
            csv_file: Optional[Path] = typer.Option(None, "--csv", help="also write one CSV line per run" + CREATES)) -> None:
    """Leaderboard of runs grouped by method (mean +/- std over seeds), accuracy-vs-cost scatter, CSV."""
    from .report.compare import terminal_tables

    res = api.compare(run_dirs, out=out_file, csv=csv_file)
    for w in res["warnings"]:
        err.print(f"warning: {w}", highlight=False, soft_wrap=True)
    for t in terminal_tables(res, out.width):  # a narrow terminal gets one block per group / run
        out.print(t)
    out.print(f"HTML: {res['html']}" + (f"  CSV: {res['csv']}" if res["csv"] else ""), highlight=False, soft_wrap=True)


@app.command("list")
def list_components(name: Optional[str] = typer.Argument(
        None, help="a strategy or space: list its options (--set / --space-opt keys); 'training' for --set of train")) -> None:
    """Every registered search space, strategy, dataset, estimator, executor and model (or one's options)."""
    if name is not None:
        comps = api.components()
        kinds = [k for k, plural in (("strategy", "strategies"), ("space", "spaces"))
                 if name in dict(comps[plural])] or (["training"] if name == "training" else [])
        if not kinds:
            raise ConfigError(f"'{name}' is not a registered strategy or space (see `nasforge list`), nor 'training'")
        for kind in kinds:
            flag = {"strategy": "--set", "space": "--space-opt / --retrain-opt", "training": "train --set"}[kind]
            t = Table(title=f"{kind} {name}: options ({flag} key=value)", title_justify="left", show_header=False,
                      box=None)
            for key, text in api.options_of(kind, name):
                t.add_row(f"[bold]{key}[/]", escape(text))  # help text is plain: "[a, b]" is an example
            out.print(t)
            size = api.space_size(name) if kind == "space" else None
            if size is not None:
                out.print(f"architectures at these defaults: {size:,} (about {size:.2g})", highlight=False,
                          soft_wrap=True)
        return
    for kind, entries in api.components().items():
        t = Table(title=kind, title_justify="left", show_header=False, box=None)
        for n, h in entries:
            t.add_row(f"[bold]{n}[/]", escape(h))
        out.print(t)


@app.command()
def demo(run_root: Path = RunRoot, tables: Optional[Path] = typer.Option(None, help="benchmark tables folder"),
         data_root: Optional[Path] = typer.Option(None, help="folder holding Fashion-MNIST (default: the system's)"),
         threads: Optional[int] = typer.Option(None, help="torch threads (default: all cores)"),
         quiet: bool = typer.Option(False, "--quiet", help="no progress bars")) -> None:
    """The default job: Single-DARTS on NB201 with Fashion-MNIST, retrain the cell, train the baseline CNN the
    same way, print both test accuracies and how far the alphas moved."""
    progress.set_enabled(not quiet)
    overrides: dict[str, Any] = _drop_none({"data_root": str(data_root) if data_root else None, "threads": threads})
    if tables is None:
        guess = Path("../shared/data/benchmarks")
        tables = guess if guess.is_dir() else None
    if tables is not None:
        overrides["tables"] = str(tables)
    out_ = _run(api.demo, overrides, run_root=run_root)
    res, base, move = out_["search"], out_["baseline"], out_["alpha_movement"]
    summary = {"arch": res["arch"], "fashion_mnist_test_accuracy": res["retrain"]["test_accuracy"],
               "params": res["retrain"]["params"],
               "baseline_cnn": {"test_accuracy": base["test_accuracy"], "params": base["params"],
                                "run_dir": base["run_dir"]},
               "alpha_movement": move, "run_dir": res["run_dir"], "cost": res["cost"]}
    if "table" in res:
        summary["nb201_cifar10_test_200ep"] = res["table"]["cifar10_test_200"]
        summary["nb201_cifar100_test_200ep"] = res["table"]["cifar100_test_200"]
        summary["nb201_imagenet16_120_test_200ep"] = res["table"]["imagenet16-120_test_200"]
    _emit(summary)
    if move is not None:
        out.print(f"alphas: mean edge entropy {move['mean_entropy_final']:.4f} of a maximum {move['max_entropy']:.4f} "
                  f"(log {round(math.exp(move['max_entropy']))} ops): fell by {100 * move['drop']:.1f} % of the maximum "
                  f"(target >= {100 * move['target']:.0f} %: {'met' if move['met'] else 'NOT met'})",
                  highlight=False, soft_wrap=True)
    out.print(f"test accuracy: found cell {res['retrain']['test_accuracy']:.4f} ({res['retrain']['params']:,} params) | "
              f"baseline CNN {base['test_accuracy']:.4f} ({base['params']:,} params), same recipe and data",
              highlight=False, soft_wrap=True)
    rep = api.report(res["run_dir"])
    for w in rep["warnings"]:
        err.print(f"warning: {w}", highlight=False, soft_wrap=True)
    out.print(f"report: {rep['report']}", highlight=False, soft_wrap=True)


from .cli_latency import latency_app  # noqa: E402  (the `nasforge latency ...` commands)

app.add_typer(latency_app, name="latency")
from .cli_proxy import proxy_app  # noqa: E402  (the `nasforge proxy ...` commands)

app.add_typer(proxy_app, name="proxy")


def _usage_error_types() -> tuple[type, ...]:
    # typer >= 0.20 vendors click as typer._click; older versions raise click's own classes
    types: list[type] = []
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(__import__(mod, fromlist=["UsageError"]).UsageError)
        except ImportError:
            pass
    return tuple(types)


def main(argv: list[str] | None = None) -> None:
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer >= 0.2x turns a Ctrl-C outside a run (e.g. while data loads) into a return value
            print("interrupted before a run directory was created; nothing to resume", file=sys.stderr)
            sys.exit(130)
    except typer.Exit as e:
        sys.exit(getattr(e, "exit_code", 0))
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _usage_error_types() as e:
        command = e.ctx.command_path if getattr(e, "ctx", None) is not None else "nasforge"
        if not e.format_message().strip():  # bare `nasforge`: help was printed
            sys.exit(2)
        print(f"error: {e.format_message()}; see '{command} --help'", file=sys.stderr)
        sys.exit(2)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted; resume with --resume RUN_DIR (finished epochs and trials are kept)", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # a file the system refused mid-run (disk full, a folder removed): one line, not a trace
        if e.filename is None:
            raise
        print(f"error: {e.strerror or type(e).__name__}: {e.filename}", file=sys.stderr)
        sys.exit(1)
    finally:
        from . import distributed

        distributed.shutdown()


if __name__ == "__main__":
    main()
