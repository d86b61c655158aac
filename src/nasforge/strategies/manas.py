"""MANAS: multi-agent NAS with one bandit agent per edge (Carlucci et al., arXiv 1909.01051).

Every edge of every alpha group is an agent choosing one of K ops. One round per minibatch:

1. every agent samples an op; together they form a path (one op per edge);
2. the sampled path is trained on a search-train batch: only the sampled ops run, hold activations
   and get gradients (unsampled ops get ``grad=None``, so SGD leaves them, their momentum and their
   weight decay alone);
3. the path is scored on a search-val batch with the updated weights (no gradient), giving a loss
   normalised to [0, 1];
4. the agents update their credits and policies from (path, loss).

Two agent families (``nasforge.engine.bandits``):

* ``manas``: EXP3 per agent, importance-weighted cumulative loss, ``pi ∝ exp(-eta * B)`` (the sign the
  paper prints is flipped because B accumulates losses), optional gamma-uniform exploration;
  ``eta`` defaults to ``sqrt(2 ln K / (T K))`` with T = epochs x steps per epoch; ``baseline=true``
  (ours) credits the loss minus the mean loss so far, a variance reduction (see bandits.Exp3Agents).
* ``manas-ls``: ridge least squares of the loss on the one-hot path encoding, Zipf sampling by
  credit rank.

Loss normalisation (``val_loss``): ``"ce"`` (default) is the batch cross-entropy divided by
ln(num_classes) and clipped to [0, 1] (ln C is the loss of a uniform prediction, so an untrained net
sits near 1); ``"error"`` is the batch error rate. CE is preferred because it is continuous: with a
batch of 64 the error rate moves in steps of 1/64, and early in training most paths tie.

Final architecture (``final``): ``"argmax"`` takes each agent's most probable op (for manas-ls the
lowest credit), ``"sample"`` draws one path from the final policies (the paper's recommendation)
with a generator seeded by (seed, rounds), so it is reproducible. On the darts space ``top2``
(default on) applies the DARTS rule: per node keep the two incoming edges whose best non-`none` op
scores highest. Scores are log-policies for manas and minus the ridge credits for manas-ls (Zipf
probabilities depend only on ranks, so they would tie across edges); with ``final="sample"`` edges
are ranked by the policy probability of their sampled op. ``top2=False`` keeps all 14 edges.

Diagnostics and checkpoints: the supernet's alphas hold log(policy), so the shared per-epoch records
(``alpha_softmax``, ``edge_entropy``, ``mean_entropy``) are the agents' policies, and
``supernet_val_accuracy`` is measured on the derived architecture's path. Agents, their numpy
generator, and the per-round loss history are part of the checkpoint, so a resumed search repeats the
uninterrupted one exactly. At the end, policy heatmaps and trajectories are written to the run dir.
"""
from __future__ import annotations


import numpy as np

from ..engine.bandits import AgentPopulation, Exp3Agents, LeastSquaresAgents, default_eta
from ..engine.paths import (FINALS, PATH_DEFAULTS, VAL_LOSSES, PathSamplingStrategy, arch_to_path,
                            normalised_loss, path_to_arch)
from ..options import Opt
from ..registry import STRATEGIES

__all__ = ["MANAS", "MANASLS", "arch_to_path", "normalised_loss", "path_to_arch"]


@STRATEGIES.register("manas", help="MANAS: one EXP3 agent per edge, sampled-path training, softmax(-eta * credit)")
class MANAS(PathSamplingStrategy):
    """EXP3 agents; ``eta=None`` uses sqrt(2 ln K / (T K)) with T = epochs x steps per epoch."""

    name = "manas"
    defaults = {**PATH_DEFAULTS, "eta": Opt(None, ">0", type=float, help="null: sqrt(2 ln K / (T K))"),
                "gamma": Opt(0.0, "[0, 1]"), "baseline": False, "val_loss": Opt("ce", choices=VAL_LOSSES),
                "final": Opt("argmax", choices=FINALS), "derive": "default"}

    def make_agents(self, n_agents: int, n_arms: int, horizon: int) -> AgentPopulation:
        eta = self.hp["eta"] if self.hp["eta"] is not None else default_eta(n_arms, horizon)
        return Exp3Agents(n_agents, n_arms, eta=float(eta), gamma=float(self.hp["gamma"]),
                          baseline=self.hp["baseline"])


@STRATEGIES.register("manas-ls", help="MANAS-LS: one agent per edge, ridge least-squares credit, Zipf sampling")
class MANASLS(PathSamplingStrategy):
    """Least-squares agents; ``refit_every=None`` refits every round up to 1024 (agent, op) columns, else
    every 10 rounds (a refit is one Cholesky solve of that size); ``warmup=None`` means K uniform rounds."""

    name = "manas-ls"
    defaults = {**PATH_DEFAULTS, "ridge": Opt(1e-3, ">0"), "refit_every": Opt(None, ">=1", type=int),
                "warmup": Opt(None, ">=0", type=int), "val_loss": Opt("ce", choices=VAL_LOSSES),
                "final": Opt("argmax", choices=FINALS), "derive": "default"}

    def make_agents(self, n_agents: int, n_arms: int, horizon: int) -> AgentPopulation:
        refit = self.hp["refit_every"]
        if refit is None:
            refit = 1 if n_agents * n_arms <= 1024 else 10
        return LeastSquaresAgents(n_agents, n_arms, ridge=self.hp["ridge"], refit_every=refit,
                                  warmup=self.hp["warmup"])

    def scores(self) -> np.ndarray:
        # Zipf probabilities depend only on ranks and tie across edges; the credits keep the margins.
        return -self.agents.credits()
