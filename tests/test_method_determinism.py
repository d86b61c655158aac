"""The new methods' own search loops are deterministic (issue 9, item 1): BATS, HURRICANE and ViTAS searches
with the same seed give the same architecture and bit-identical final supernet weights (alphas included) and
scores in two fresh processes, each started from a different global RNG state and a different string-hash
seed (so nothing may depend on set order or on an unseeded generator)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nasforge
from test_hurricane import TINY as MOBILE_TINY, fake_cache  # noqa: F401  (fixture)
from test_vit import SMALL as VIT_SMALL

SRC = str(Path(nasforge.__file__).resolve().parents[1])

_SCRIPT = r"""
import hashlib, json, random, sys, torch
torch.seed(); random.seed()  # a different global RNG state in every process
from nasforge import api
from nasforge.runs.store import RunDir

def digest(state):
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode()); h.update(state[k].detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()

root, lut, mobile, vit = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
tiny = {"dataset": "synthetic", "subset": 128, "threads": 1, "batch_size": 32, "seed": 5}
runs = {
    "bats": {**tiny, "space": "bats", "method": "bats", "space_options": {"C": 4, "layers": 2, "groups": 2,
             "shuffle_groups": 2}, "budget": {"epochs": 1}, "hparams": {"gap_batches": 1, "eval_batches": 1}},
    "hurricane": {**tiny, "space": "mobile", "method": "hurricane", "space_options": mobile, "budget": {"epochs": 2},
                  "hparams": {"population": 4, "sample_size": 2, "evaluations": 4, "bn_batches": 1,
                              "eval_batches": 1, "lut_cache": lut}},
    "vitas": {**tiny, "space": "vit", "method": "vitas", "space_options": vit, "budget": {"epochs": 1},
              "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 4, "population": 3, "sample_size": 2,
                          "eval_images": 32, "eval_batch": 32, "calib_samples": 100}},
}
out = {}
for name, cfg in runs.items():
    res = api.search(cfg, run_root=root, run_name=name)
    state = RunDir(res["run_dir"]).load_checkpoint()
    scores = [r for r in map(json.loads, open(res["run_dir"] + "/metrics.jsonl"))
              if r.get("event") in ("epoch", "candidate")]
    for r in scores:
        r.pop("images_per_s", None)  # a timing
    out[name] = {"arch": res["arch"], "supernet": digest(state["supernet"]), "records": scores}
print(json.dumps(out))
"""


def test_bats_hurricane_vitas_are_deterministic_in_fresh_processes(tmp_path, fake_cache):
    script = tmp_path / "det.py"
    script.write_text(_SCRIPT)
    outs = []
    for i in range(2):
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "PYTHONHASHSEED": str(i + 1)}
        p = subprocess.run([sys.executable, str(script), str(tmp_path / f"runs{i}"), str(fake_cache),
                            json.dumps(MOBILE_TINY), json.dumps(VIT_SMALL)], capture_output=True, text=True,
                           env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    for name in ("bats", "hurricane", "vitas"):
        assert outs[0][name] == outs[1][name], name
        assert outs[0][name]["records"]  # epochs (and candidates) were logged and compared
