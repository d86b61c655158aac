"""The supernet engine (issue 19) changed how the one-shot loop is organised, not what it computes: searches
pinned from the tree before the change (tests/fixtures/oneshot_pins.json: darts first and second order,
single-darts, manas, manas-ls, random-ws and bats, tiny configs with an odd subset and a partial last batch)
must derive the same architecture and log the same per-epoch metrics with the same seed."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nasforge import api

PINS = json.loads((Path(__file__).parent / "fixtures" / "oneshot_pins.json").read_text())["runs"]
DROP = ("time", "images_per_s")
#: the previous path (issue 20): fp32 explicitly (the default is now auto), in each space's previous memory format
PREVIOUS_FORMAT = {"nb201": "contiguous", "darts": "channels_last", "bats": "channels_last"}


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


@pytest.mark.parametrize("name", sorted(PINS))
def test_search_matches_the_pinned_result(name, tmp_path):
    pin = PINS[name]
    cfg = {**pin["config"], "precision": "fp32", "memory_format": PREVIOUS_FORMAT[pin["config"]["space"]]}
    res = api.search(cfg, run_root=tmp_path, run_name="r")
    assert res["arch"] == pin["arch"]
    records = [json.loads(line) for line in open(Path(res["run_dir"]) / "metrics.jsonl")]
    epochs = [{k: v for k, v in r.items() if k not in DROP and not k.endswith("_s")}
              for r in records if r.get("event") == "epoch"]
    assert len(epochs) == len(pin["epochs"])
    for got, want in zip(epochs, pin["epochs"]):
        want_flat, got_flat = dict(_flat(want)), dict(_flat(got))
        missing = set(want_flat) - set(got_flat)
        assert not missing, missing
        for k, v in want_flat.items():
            g = got_flat[k]
            if isinstance(v, float) and not (isinstance(v, float) and math.isnan(v)):
                assert g == pytest.approx(v, rel=1e-6, abs=1e-9), k
            else:
                assert g == v, k


@pytest.mark.parametrize("name", sorted(n for n, p in PINS.items() if p["config"]["space"] in ("darts", "bats")
                                        and p["config"]["method"] in ("darts", "bats")))
def test_per_edge_reference_reproduces_the_pins_exactly(name, tmp_path):
    """Issue 20: the darts/bats supernets' weighted mode now runs grouped by source node; the per-edge
    reference (space option fused=false) is the code the pins were taken from, float for float."""
    pin = PINS[name]
    config = {**pin["config"], "precision": "fp32", "memory_format": PREVIOUS_FORMAT[pin["config"]["space"]],
              "space_options": {**pin["config"]["space_options"], "fused": False}}
    res = api.search(config, run_root=tmp_path, run_name="r")
    assert res["arch"] == pin["arch"]
    records = [json.loads(line) for line in open(Path(res["run_dir"]) / "metrics.jsonl")]
    epochs = [{k: v for k, v in r.items() if k not in DROP and not k.endswith("_s")}
              for r in records if r.get("event") == "epoch"]
    for got, want in zip(epochs, pin["epochs"], strict=True):
        got_flat = dict(_flat(got))
        for k, v in _flat(want):
            assert got_flat[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(got_flat[k])), k
