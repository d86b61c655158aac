"""The training engine shared by final training, trial estimators and supernet warm-up."""
from .engine import (TrainConfig, check_finite, evaluate, kd_loss, make_optimizer, no_decay_groups, param_groups,
                     split_logits, train_model)

__all__ = ["TrainConfig", "train_model", "evaluate", "make_optimizer", "no_decay_groups", "split_logits", "check_finite",
           "kd_loss", "param_groups"]
