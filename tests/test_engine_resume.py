"""Kill-and-resume through the supernet engine's phases, for every one-shot method (issue 19; issue 24 item 5):
a search that dies at a checkpoint - inside supernet training, between phases, or inside a selection phase
after some candidates were logged but before they were checkpointed - resumes to the uninterrupted search's
architecture, supernet (bit for bit) and metrics.jsonl, and every record appears exactly once (records carry
sequence numbers; a resume drops those logged after its checkpoint)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasforge import api
from nasforge.engine.base import SearchContext
from test_engine_dp import configs
from test_hurricane import fake_cache  # noqa: F401  (fixture)

DROP = ("time", "images_per_s")


def _records(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if k not in DROP and not k.endswith("_s")})
    return out


# (method, checkpoint call to die at, before=True: the process dies before that checkpoint is written)
CASES = [
    ("darts", 1, False),          # after epoch 1 of 2
    ("single-darts", 2, True),    # epoch 2 logged, its checkpoint never written
    ("manas", 1, False),
    ("manas-ls", 2, True),
    ("random-ws", 1, False),
    ("bats", 2, True),
    ("hurricane", 3, True),       # stage 1's selection: candidates logged after its first checkpoint
    ("hurricane", 5, False),      # in stage 2, after its first epoch (stage 1 selected and fixed)
    ("vitas", 4, True),           # the evolution: candidates 5-6 logged, not checkpointed (the report: 26 vs 24)
]


@pytest.mark.parametrize("method,at,before", CASES)
def test_killed_search_resumes_to_the_uninterrupted_result(method, at, before, tmp_path, crash, same_supernet,
                                                           fake_cache):
    cfg = configs(method, str(fake_cache))["plain"]
    cfg = {**cfg, "device": "cpu", "budget": {"epochs": 2}}
    if method == "vitas":
        cfg["hparams"] = {**cfg["hparams"], "candidates": 6, "checkpoint_every": 4}
    ref = api.search(cfg, run_root=tmp_path / "a", run_name="r")
    with crash(SearchContext, "checkpoint", at=at, before=before) as died, pytest.raises(died):
        api.search(cfg, run_root=tmp_path / "b", run_name="r")
    resumed = api.search(resume=tmp_path / "b" / "r")
    assert resumed["arch"] == ref["arch"]
    same_supernet(ref["run_dir"], tmp_path / "b" / "r")
    got, want = _records(tmp_path / "b" / "r"), _records(Path(ref["run_dir"]))
    assert got == want
    seqs = [r["seq"] for r in got if "seq" in r]
    assert seqs == list(range(1, len(seqs) + 1))  # each record exactly once, in order
    if method == "vitas":
        assert sum(r.get("event") == "candidate" for r in got) == 6
