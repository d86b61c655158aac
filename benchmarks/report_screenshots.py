"""Make the screenshots in docs/report.md: tiny real runs of the six methods, their reports, a comparison.

The runs are deliberately tiny (Fashion-MNIST subsets, one or two supernet epochs, one retraining epoch), made
to show what the pages look like; their accuracies are not results and must not be quoted as such.

    python benchmarks/report_screenshots.py --root /tmp/six --tables ../shared/data/benchmarks \
        [--report-run runs/<a single-darts run>]

Runs already finished under --root are reused (the script can be re-run after adding a method). Prints JSON:
the runs, the pages and the screenshots written (docs/img/report_single_darts.png,
docs/img/compare_six_methods.png), and the load average while it ran.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nasforge
from nasforge.errors import UserError
from nasforge.report import browser

REPO = Path(__file__).resolve().parents[1]
RETRAIN = {"retrain": {"epochs": 1, "batch_size": 128}, "retrain_subset": 2000, "test_subset": 1000}
NB201 = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "subset": 1000}


def configs(tables: str | None) -> dict[str, dict]:
    """One tiny configuration per method (Fashion-MNIST; same retraining for all)."""
    t = {"tables": tables} if tables else {}
    return {
        "single-darts": {**NB201, **t, "method": "single-darts", "budget": {"epochs": 2},
                         "hparams": {"hessian_every": 2}},
        "manas": {**NB201, **t, "method": "manas", "budget": {"epochs": 2}},
        "pnas": {"space": "pnas", "space_options": {"ops": "reduced", "blocks": 2, "C": 4, "N": 1}, "subset": 500,
                 "method": "pnas", "estimator": "scratch", "budget": {"trials": 8},
                 "hparams": {"K": 2}, "estimator_options": {"train": {"epochs": 1, "batch_size": 64}}},
        "bats": {"space": "bats", "space_options": {"C": 8, "layers": 3, "groups": 2, "shuffle_groups": 2},
                 "subset": 500, "method": "bats", "budget": {"epochs": 2}},
        "hurricane": {**t, "space": "nb201", "method": "hurricane", "estimator": "table", "budget": {"trials": 40},
                      "hparams": {"target": "pixel3", "latency_frac": 0.3}, "retrain_space_options": {"C": 4, "N": 1}},
        "vitas": {"space": "vit", "method": "vitas", "subset": 500, "batch_size": 32,
                  "space_options": {"embed_dim": 16, "qkv_dim": 16, "mlp_dim": 32, "depth": 3}, "budget": {"epochs": 2},
                  "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 6, "population": 3, "sample_size": 2,
                              "eval_images": 128, "eval_batch": 64}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/nasforge-six", help="folder for the tiny runs")
    ap.add_argument("--tables", default=None, help="benchmark tables folder (NB201 look-ups, hurricane's table mode)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--methods", default=None, help="comma-separated subset of the six")
    ap.add_argument("--out", default=str(REPO / "docs" / "img"))
    ap.add_argument("--report-run", default=None,
                    help="run whose report is shot as report_single_darts.png (default: the tiny single-darts-s0)")
    args = ap.parse_args()
    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfgs = configs(args.tables)
    methods = args.methods.split(",") if args.methods else list(cfgs)
    loads, runs, skipped = [os.getloadavg()[0]], [], {}
    t0 = time.time()
    for m in methods:
        for seed in range(args.seeds):
            run = root / f"{m}-s{seed}"
            if not (run / "result.json").is_file():
                cfg = {"dataset": "fashion-mnist", "threads": 1, "seed": seed, **RETRAIN, **cfgs[m]}
                try:
                    nasforge.search(cfg, run_root=root, run_name=run.name)
                except UserError as e:  # e.g. a method not on this checkout yet: say so, keep the others
                    skipped[m] = str(e)
                    break
                loads.append(os.getloadavg()[0])
            runs.append(run)
    pages = {}
    single = Path(args.report_run) if args.report_run else root / "single-darts-s0"
    if single.is_dir():
        page = nasforge.report(single)["report"]
        shot = browser.screenshot(page, width=1200, height=900, full_page=True)
        (out / "report_single_darts.png").write_bytes(shot.png)
        pages["report"] = {"html": page, "png": str(out / "report_single_darts.png"), "console_errors": shot.errors}
    for r in runs:
        nasforge.report(r)
    cmp = nasforge.compare(runs, out=root / "compare.html", csv=root / "compare.csv")
    shot = browser.screenshot(root / "compare.html", width=1300, height=900, full_page=True)
    (out / "compare_six_methods.png").write_bytes(shot.png)
    pages["compare"] = {"html": cmp["html"], "csv": cmp["csv"], "png": str(out / "compare_six_methods.png"),
                        "console_errors": shot.errors}
    json.dump({"runs": [str(r) for r in runs], "skipped": skipped, "pages": pages,
               "groups": [{"method": g["method"], "space": g["space"], "n": g["n"]} for g in cmp["groups"]],
               "wall_s": round(time.time() - t0, 1), "load_avg_1min": [round(x, 2) for x in loads]},
              sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
