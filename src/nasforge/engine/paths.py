"""Sampled-path training: the shared loop of the strategies that train one path per step (MANAS, MANAS-LS,
random-ws), and the helpers that score a path with the shared weights.

Agents (``nasforge.engine.bandits``) act on a flat vector with one entry per edge; the supernet trains the
sampled path; with ``feedback`` the same path is scored on a search-val batch and the agents learn from
the normalised loss.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from itertools import islice
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..errors import ConfigError, choices_message
from ..options import Opt
from ..supernet import Supernet
from .bandits import AgentPopulation
from .base import SearchContext, SearchResult
from .oneshot import WEIGHT_DEFAULTS, OneShotStrategy, check_loss
from .scoring import loss_and_accuracy, preserved

VAL_LOSSES = ("ce", "error")
FINALS = ("argmax", "sample")
#: separates the agents' random stream from any other use of the run seed
_AGENT_STREAM = 0x6D616E6173  # "manas"
_DERIVE_STREAM = 0x646572  # "der"

PATH_DEFAULTS: dict[str, Any] = {**WEIGHT_DEFAULTS, "hessian_every": Opt(0, ">=0"),
                                 "top2": Opt(None, type=bool, help="darts space only; null: on for darts")}


def normalised_loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> float:
    """The bandit loss of one validation batch, in [0, 1] (see the module docstring).

    Under data parallelism `logits`/`y` are this process's shard and the loss is that of the global batch
    (sums over processes), so every rank gives its agents the same loss."""
    logits = logits.float()
    if distributed.active():
        wrong = float((logits.argmax(1) != y).sum())
        ce_sum = float(F.cross_entropy(logits, y, reduction="sum"))
        wrong, ce_sum, n = distributed.sum_floats(wrong, ce_sum, len(y))
        if kind == "error":
            return wrong / n
        return min(max(ce_sum / n / math.log(logits.shape[1]), 0.0), 1.0)
    if kind == "error":
        return float((logits.argmax(1) != y).float().mean())
    ce = float(F.cross_entropy(logits, y))
    return min(max(ce / math.log(logits.shape[1]), 0.0), 1.0)


class PathSamplingStrategy(OneShotStrategy):
    """Shared loop of the strategies that train one sampled path per step (MANAS, MANAS-LS, random-ws).

    The agents act on a flat vector with one entry per edge, the alpha groups concatenated in the
    supernet's order; `actions_to_path` / `path_to_actions` convert.
    """

    defaults: ClassVar[dict[str, Any]] = dict(PATH_DEFAULTS)
    #: score each sampled path on a validation batch and give the loss to the agents
    feedback: ClassVar[bool] = True
    second_stream = "val"

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self.check_hparams()  # fail before a run directory is created

    def check_hparams(self) -> None:
        for key, valid in (("val_loss", VAL_LOSSES), ("final", FINALS)):
            if key in self.hp and self.hp[key] not in valid:
                raise ConfigError(choices_message(f"{self.name} {key}", str(self.hp[key]), list(valid)))
        if self.hp["hessian_every"]:
            raise ConfigError(f"strategy '{self.name}' has no architecture gradient, so there is no Hessian to "
                              "track; leave hessian_every at 0")
        if self.hp.get("final") == "sample" and self.hp.get("derive", "default") != "default":
            raise ConfigError(f"{self.name} derive={self.hp['derive']} applies to final=argmax; final=sample "
                              "draws the architecture from the policies")

    # -- subclass hooks -----------------------------------------------------------------------
    def make_agents(self, n_agents: int, n_arms: int, horizon: int) -> AgentPopulation:
        raise NotImplementedError

    # -- setup ----------------------------------------------------------------------------------
    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        top2 = self.hp["top2"]
        if top2 and not supernet.prunes_inputs:
            raise ConfigError(f"top2 applies to supernets whose derivation keeps 2 inputs per node; "
                              f"'{ctx.space.name}' derives one op per edge")
        self.top2 = bool(supernet.prunes_inputs if top2 is None else top2)
        self.groups = list(supernet.alphas.keys())
        shapes = [tuple(supernet.alphas[g].shape) for g in self.groups]
        self.n_arms = shapes[0][1]
        self.bounds = np.cumsum([0] + [e for e, _ in shapes])
        self.op_names = list(supernet.op_names)
        self.seed = ctx.seed
        supernet.temperature = 1.0  # alphas mirror log(policy): softmax(alpha) must return the policy
        supernet.activation = "softmax"
        horizon = ctx.budget.epochs * len(ctx.data.loaders(ctx.seed)[0])
        self.horizon = horizon
        self.agents = self.make_agents(int(self.bounds[-1]), self.n_arms, horizon)
        self.rng = np.random.default_rng([ctx.seed, _AGENT_STREAM])
        self.loss_history: list[float] = []
        self.steps_done = 0
        self._sync_alphas(supernet)

    # -- paths ------------------------------------------------------------------------------------
    def actions_to_path(self, actions: np.ndarray) -> dict[str, torch.Tensor]:
        # paths are host-side control data (op indices read as Python ints), whatever the device
        return {g: torch.tensor(actions[s:e], dtype=torch.long)  # host: path indices
                for g, s, e in zip(self.groups, self.bounds[:-1], self.bounds[1:])}

    def path_to_actions(self, path: dict[str, torch.Tensor]) -> np.ndarray:
        return np.concatenate([path[g].cpu().numpy() for g in self.groups]).astype(np.int64)

    def by_group(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Split an (N, ...) per-agent array into the alpha groups."""
        return {g: matrix[s:e] for g, s, e in zip(self.groups, self.bounds[:-1], self.bounds[1:])}

    # -- one round ----------------------------------------------------------------------------------
    def step(self, supernet, batch, second, ctx):
        actions = self.agents.sample(self.rng)
        supernet.set_path(self.actions_to_path(actions))
        x, y = batch
        logits = supernet(x)
        loss = F.cross_entropy(logits, y)
        check_loss(loss, f"{self.name} weight step")
        self.w_opt.zero_grad(set_to_none=True)  # unsampled ops keep grad=None: SGD skips them entirely
        self.prec.scale(loss).backward()
        self.weight_step(supernet)
        stats = {"train_loss": loss.item(), "train_accuracy": (logits.argmax(1) == y).float().mean().item()}
        if self.feedback:
            xv, yv = second
            with torch.no_grad():  # the same path, scored with the weights it was just trained to
                val_logits = supernet(xv)
            agent_loss = normalised_loss(val_logits, yv, self.hp["val_loss"])
            self.agents.update(actions, agent_loss)
            self.loss_history.append(agent_loss)
            stats.update(val_loss=F.cross_entropy(val_logits, yv).item(),
                         val_accuracy=(val_logits.argmax(1) == yv).float().mean().item(), agent_loss=agent_loss)
        self.steps_done += 1
        return stats

    # -- policies and derivation ------------------------------------------------------------------
    def policies(self) -> np.ndarray:
        return self.agents.probabilities()

    def scores(self) -> np.ndarray:
        """Per (agent, op) logits ranking ops and, for the DARTS rule, edges; default log-policy."""
        return np.log(np.maximum(self.policies(), 1e-300))

    def greedy_actions(self) -> np.ndarray:
        return self.agents.best()

    def _sync_alphas(self, supernet: Supernet) -> None:
        """Write log(policy) into the alphas, so shared diagnostics and checkpoints see the policies."""
        logp = self.by_group(np.log(np.maximum(self.policies(), 1e-30)))
        with torch.no_grad():
            for g in self.groups:
                a = supernet.alphas[g]
                a.copy_(torch.from_numpy(logp[g]).to(device=a.device, dtype=a.dtype))  # host: numpy, then moved

    def derive(self, supernet: Supernet, ctx: SearchContext) -> Any:
        final = self.hp["final"]
        if final == "sample":
            rng = np.random.default_rng([self.seed, _DERIVE_STREAM, self.agents.t])
            actions = self.agents.sample(rng)
            if self.top2:
                # Rank edges by the probability of their sampled op; the other ops keep a vanishing share
                # of their policy, so a node with fewer than two real sampled inputs completes itself
                # with the most likely real op of its best remaining edge; `none` takes the rest.
                rows = np.arange(len(actions))
                pi = self.policies()
                none = self.op_names.index("none")
                q = 1e-6 * pi
                q[rows, actions] = pi[rows, actions]
                q[:, none] = 0.0
                q[:, none] = 1.0 - q.sum(axis=1)
                return supernet.derive(self._tensors(np.log(np.maximum(q, 1e-300))))
            return path_to_arch(supernet, self.actions_to_path(actions), top2=False)
        if self.top2:
            return supernet.derive(self._tensors(self.scores()))
        rule = self.hp.get("derive", "default")
        if rule != "default":  # e.g. "connected": the best cell under the policies whose input reaches its output
            return supernet.derive(self._tensors(self.scores()), rule=rule)
        return path_to_arch(supernet, self.actions_to_path(self.greedy_actions()), top2=False)

    def _tensors(self, matrix: np.ndarray) -> dict[str, torch.Tensor]:
        return {g: torch.from_numpy(np.ascontiguousarray(m))  # host: scores for derive (read on the host)
                for g, m in self.by_group(matrix).items()}

    # -- diagnostics ------------------------------------------------------------------------------------
    def _diagnostics(self, supernet, ctx, val_loader, epoch):
        """The shared diagnostics, with the alphas holding the policies and the derived arch's path set,
        so `supernet_val_accuracy` is the accuracy of that architecture with the shared weights (BN in
        eval mode). BN running statistics mix every sampled path, so the same batches are also scored
        with batch statistics, as the agents see paths: `derived_val_accuracy_batch_stats`."""
        self._sync_alphas(supernet)
        previous = supernet.path
        path = arch_to_path(supernet, ctx.space.validate(self.derive(supernet, ctx)))
        supernet.set_path(path)
        try:
            out = super()._diagnostics(supernet, ctx, val_loader, epoch)
        finally:
            supernet.set_path(previous)
        val_loader.set_epoch(10_000 + epoch)  # the batches the shared diagnostics used
        batches = list(islice(val_loader, self.hp["eval_batches"]))
        with batch_statistics(supernet):
            out["derived_val_accuracy_batch_stats"] = score_path(supernet, path, batches)[1]
        return out

    def epoch_diagnostics(self, supernet, ctx, val_batch) -> dict[str, Any]:
        p = self.policies()
        return {
            "agent_rounds": self.agents.t,
            "policy_best_prob": {g: v.tolist() for g, v in self.by_group(p.max(axis=1)).items()},
            "mean_policy_best_prob": float(p.max(axis=1).mean()),
            "greedy_path": {g: v.tolist() for g, v in self.by_group(self.greedy_actions()).items()},
        }

    def summary(self) -> dict[str, Any]:
        """Final policies (and credits, if the agents have them) per group, for result.json."""
        out: dict[str, Any] = {"op_names": self.op_names, "agent_rounds": self.agents.t,
                               "policies": {g: v.tolist() for g, v in self.by_group(self.policies()).items()}}
        if hasattr(self.agents, "credits"):
            out["credits"] = {g: v.tolist() for g, v in self.by_group(self.agents.credits()).items()}
        if self.loss_history:
            h = np.asarray(self.loss_history)
            k = max(1, len(h) // 10)
            out["agent_loss_first_last_10pct"] = [float(h[:k].mean()), float(h[-k:].mean())]
        return out

    # -- checkpoints ---------------------------------------------------------------------------------
    def strategy_state(self) -> dict[str, Any]:
        return {"agents": self.agents.state_dict(), "rng": self.rng.bit_generator.state,
                "loss_history": np.asarray(self.loss_history, dtype=np.float64), "steps_done": self.steps_done}

    def load_strategy_state(self, state: dict[str, Any]) -> None:
        self.agents.load_state_dict(state["agents"])
        self.rng.bit_generator.state = state["rng"]
        self.loss_history = [float(v) for v in state["loss_history"]]
        self.steps_done = int(state["steps_done"])

    # -- the search, plus the end-of-search plots --------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        result = super().search(ctx)
        result.metrics.update(self.summary())
        if ctx.run is not None:
            result.metrics["plots"] = self.write_plots(result.history, ctx.run.path)
        return result

    def write_plots(self, history: list[dict[str, Any]], folder) -> list[str]:
        from ..report import plots

        files = [plots.plot_policies(self.by_group(self.policies()), self.op_names, folder / "policies.png",
                                     title=f"{self.name}: final policy per edge (after {self.agents.t} rounds)")]
        if history:
            files.append(plots.plot_alpha_trajectories(history, folder / "policy_trajectories.png", self.op_names))
            files.append(plots.plot_policy_concentration(history, folder / "policy_concentration.png"))
        if self.loss_history:
            files.append(plots.plot_loss_history(self.loss_history, folder / "agent_loss.png",
                                                 ylabel=f"agent loss ({self.hp['val_loss']}, normalised)"))
        return [str(f) for f in files]


# -- scoring paths with the shared weights -------------------------------------------------------------
@contextmanager
def batch_statistics(supernet: Supernet) -> Iterator[None]:
    """Score with BN in training mode (batch statistics); every buffer, the mode and the path are restored
    afterwards (:func:`nasforge.engine.scoring.preserved`), so that scoring never changes the supernet."""
    with preserved(supernet):
        supernet.train()
        yield


def score_path(supernet: Supernet, path: dict[str, torch.Tensor], batches) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `path` over `batches`, without gradients, summed over data-parallel
    processes (the engine's one scorer, :func:`nasforge.engine.scoring.loss_and_accuracy`)."""
    supernet.set_path(path)
    return loss_and_accuracy(supernet, batches)


# -- space adapters (kept for callers of the functions; the supernets implement them) -------------------
def path_to_arch(supernet: Supernet, path: dict[str, torch.Tensor], top2: bool = False) -> Any:
    """The architecture of a path; where the supernet prunes inputs, ``top2=False`` keeps every edge."""
    return supernet.path_to_arch(path, top2=top2)


def arch_to_path(supernet: Supernet, arch: Any) -> dict[str, torch.Tensor]:
    """The path that runs exactly `arch` on the supernet (edges an arch leaves out get `none`)."""
    return supernet.arch_to_path(arch)
