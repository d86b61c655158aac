import pytest
import torch
import torch.nn as nn

from nasforge.errors import ConfigError, TrainingDiverged
from nasforge.models import BaselineCNN
from nasforge.runs import RunDir
from nasforge.training import TrainConfig, train_model

CFG = dict(epochs=3, batch_size=64, lr=0.05, crop_padding=2, hflip=True, cutout=4, seed=7)


def fresh_model():
    torch.manual_seed(0)
    return BaselineCNN(1, 10, width=8)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_learns_and_logs(tiny_data):
    train, test = tiny_data
    cfg = TrainConfig(**{**CFG, "hflip": False, "cutout": 0, "crop_padding": 0, "epochs": 4, "batch_size": 32})
    out = train_model(fresh_model(), train, test, cfg)
    h = out["history"]
    assert [r["epoch"] for r in h] == [1, 2, 3, 4]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert h[-1]["test_accuracy"] > 0.5  # synthetic classes are separable
    assert all(r["images_per_s"] > 0 for r in h)
    assert out["cost"]["wall_s"] > 0 and out["cost"]["peak_rss_mb"] > 0


def test_same_seed_is_bit_identical(tiny_data):
    train, test = tiny_data
    m1, m2 = fresh_model(), fresh_model()
    o1 = train_model(m1, train, test, TrainConfig(**CFG))
    o2 = train_model(m2, train, test, TrainConfig(**CFG))
    assert state_equal(m1, m2)
    assert [r["train_loss"] for r in o1["history"]] == [r["train_loss"] for r in o2["history"]]
    m3 = fresh_model()
    train_model(m3, train, test, TrainConfig(**{**CFG, "seed": 8}))
    assert not state_equal(m1, m3)


def test_resume_after_interruption_equals_uninterrupted(tiny_data, tmp_path):
    train, test = tiny_data
    full = fresh_model()
    ref = train_model(full, train, test, TrainConfig(**CFG))

    run = RunDir.create(tmp_path, "train", {"x": 1}, name="r")

    def crash(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    interrupted = fresh_model()
    with pytest.raises(KeyboardInterrupt):
        train_model(interrupted, train, test, TrainConfig(**CFG), run=run, on_epoch=crash)
    assert run.load_checkpoint()["epoch"] == 2
    resumed = fresh_model()  # a new process starts from a fresh model and the checkpoint
    out = train_model(resumed, train, test, TrainConfig(**CFG), run=RunDir.open(run.path))
    assert state_equal(resumed, full)
    assert [r["train_loss"] for r in out["history"]] == [r["train_loss"] for r in ref["history"]]
    assert [m["epoch"] for m in run.metrics() if m.get("event") == "epoch"] == [1, 2, 3]


def test_nan_loss_is_a_clear_error_and_keeps_finished_epochs(tiny_data, tmp_path):
    train, test = tiny_data
    run = RunDir.create(tmp_path, "train", {}, name="nan")
    model = fresh_model()
    calls = {"n": 0}
    original = model.forward

    def poisoned(x):  # the second epoch produces NaN logits
        calls["n"] += 1
        out = original(x)
        return out * float("nan") if calls["n"] > 8 else out

    model.forward = poisoned
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2"):
        train_model(model, train, None, TrainConfig(**{**CFG, "batch_size": 64}), run=run)
    assert run.load_checkpoint()["epoch"] == 1


def test_aux_head_and_drop_path_are_used(tiny_data):
    train, _ = tiny_data

    class Aux(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = BaselineCNN(1, 10, width=4)
            self.aux = nn.Linear(28 * 28, 10)
            self.drop_path_prob = 0.0
            self.seen = []

        def forward(self, x):
            self.seen.append(self.drop_path_prob)
            if self.training:
                return self.body(x), self.aux(x.flatten(1))
            return self.body(x)

    m = Aux()
    train_model(m, train, None, TrainConfig(epochs=2, batch_size=256, aux_weight=0.4, drop_path=0.2))
    assert m.aux.weight.grad is not None and m.aux.weight.grad.abs().sum() > 0
    assert sorted(set(m.seen)) == [0.0, 0.1]


@pytest.mark.parametrize("bad,match", [({"optimizer": "lamb"}, "optimizer must be one of sgd, adam, adamw"),
                                       ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr must be a number > 0"),
                                       ({"lr": float("nan")}, "lr must be a finite number"),
                                       ({"stages": 3}, "stages must be one of 0, 1, 2"),
                                       ({"kd_tau": 0.0}, "kd_tau must be a number > 0")])
def test_bad_training_config(bad, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**bad)
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})
