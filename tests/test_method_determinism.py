"""The new methods' own search loops are deterministic (issue 9, item 1): BATS, HURRICANE and ViTAS searches
with the same seed give the same architecture and bit-identical final supernet weights (alphas included) and
logged losses, accuracies and candidate scores in two processes, each started from a different global RNG
state and a different string-hash seed (so nothing may depend on set order or on an unseeded generator)."""
from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import nasforge
from test_hurricane import TINY as MOBILE_TINY, fake_cache  # noqa: F401  (fixture)
from test_vit import SMALL as VIT_SMALL

SRC = str(Path(nasforge.__file__).resolve().parents[1])

_SCRIPT = r"""
import hashlib, json, random, sys, torch
from nasforge import api
from nasforge.runs.store import RunDir


def digest(state):
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode()); h.update(state[k].detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def main(root, lut, mobile, vit):
    torch.seed(); random.seed()  # a different global RNG state in every process
    tiny = {"dataset": "synthetic", "subset": 64, "threads": 1, "batch_size": 32, "seed": 5}
    runs = {
        "bats": {**tiny, "space": "bats", "method": "bats", "space_options": {"C": 2, "layers": 3, "groups": 1,
                 "shuffle_groups": 2}, "budget": {"epochs": 1}, "hparams": {"gap_batches": 1, "eval_batches": 1}},
        "hurricane": {**tiny, "space": "mobile", "method": "hurricane", "space_options": mobile,
                      "budget": {"epochs": 2}, "hparams": {"population": 4, "sample_size": 2, "evaluations": 4,
                                                          "bn_batches": 1, "eval_batches": 1, "lut_cache": lut}},
        "vitas": {**tiny, "space": "vit", "method": "vitas", "space_options": vit, "budget": {"epochs": 1},
                  "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 4, "population": 3, "sample_size": 2,
                              "eval_images": 32, "eval_batch": 32, "calib_samples": 100}},
    }
    out = {}
    for name, cfg in runs.items():
        res = api.search(cfg, run_root=root, run_name=name)
        state = RunDir(res["run_dir"]).load_checkpoint()
        records = [r for r in map(json.loads, open(res["run_dir"] + "/metrics.jsonl"))
                   if r.get("event") in ("epoch", "candidate")]
        for r in records:  # drop timings
            for k in [k for k in r if k in ("time", "images_per_s") or k.endswith("_s")]:
                r.pop(k)
        out[name] = {"arch": res["arch"], "supernet": digest(state["supernet"]), "records": records}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]))))
"""


def test_bats_hurricane_vitas_are_deterministic_in_fresh_processes(tmp_path, fake_cache):
    """One run in a fresh subprocess (its own PYTHONHASHSEED), one in this long-lived test process (a
    different hash seed and RNG state, after many other tests): the results must agree bit for bit."""
    script = tmp_path / "det.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONHASHSEED": "7"}
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "runs0"), str(fake_cache),
                        json.dumps(MOBILE_TINY), json.dumps(VIT_SMALL)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    fresh = json.loads(p.stdout.strip().splitlines()[-1])
    here = runpy.run_path(str(script))["main"](str(tmp_path / "runs1"), str(fake_cache), MOBILE_TINY, VIT_SMALL)
    for name in ("bats", "hurricane", "vitas"):
        assert json.loads(json.dumps(here[name])) == fresh[name], name
        assert fresh[name]["records"]  # epochs (and candidates) were logged and compared
