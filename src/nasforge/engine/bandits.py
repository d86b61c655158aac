"""MANAS bandit agents: one agent per edge, each choosing one of K ops from a shared scalar loss.

MANAS (Carlucci et al., arXiv 1909.01051) treats every edge of the network as an agent that picks
one of K candidate ops. All N agents act at once, forming one architecture; the only feedback is
the scalar validation loss of that architecture. The agents here keep that bookkeeping and
nothing else (no torch), vectorised over agents, so a search strategy is a thin loop::

    actions = agents.sample(rng)          # (N,) op index per edge
    loss = train_then_validate(actions)   # train the sampled path, validation loss in [0, 1]
    agents.update(actions, loss)

Three populations share the `AgentPopulation` interface:

* `Exp3Agents` ("manas"): importance-weighted cumulative loss per op, softmax sampling.
* `LeastSquaresAgents` ("manas-ls"): a ridge fit of the loss as a sum of per-(edge, op) credits,
  Zipf sampling by credit rank.
* `UniformAgents` ("uniform"): the random-search baseline.

`AdditiveProblem` and `GaussianSqueeze` are synthetic losses for tests and the M2 benchmark.
The agents never hold a random generator: `sample` takes one, so a checkpoint stores the
generator state next to `state_dict()` and a resumed search repeats the same samples.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import entr, softmax

from ..errors import ConfigError, TrainingDiverged, choices_message

__all__ = [
    "AGENTS",
    "AdditiveProblem",
    "AgentPopulation",
    "Exp3Agents",
    "GaussianSqueeze",
    "LeastSquaresAgents",
    "UniformAgents",
    "default_eta",
    "make_agents",
    "simulate",
    "zipf_probabilities",
]


def _check_sizes(n_agents: int, n_arms: int) -> None:
    if not isinstance(n_agents, (int, np.integer)) or n_agents < 1:
        raise ConfigError(f"number of agents must be an integer >= 1 (one per edge), got {n_agents!r}")
    if not isinstance(n_arms, (int, np.integer)) or n_arms < 2:
        raise ConfigError(f"number of arms (candidate ops per edge) must be an integer >= 2, got {n_arms!r}")


def zipf_probabilities(n_arms: int) -> np.ndarray:
    """Zipf law over ranks: p[r-1] = 1 / (r * H_K), H_K = 1 + 1/2 + ... + 1/K (rank 1 first)."""
    _check_sizes(1, n_arms)
    inv_rank = 1.0 / np.arange(1, n_arms + 1)
    return inv_rank / inv_rank.sum()


def default_eta(n_arms: int, horizon: int) -> float:
    """EXP3 learning rate sqrt(2 ln K / (T K)) for losses in [0, 1] over a known horizon T.

    This is the worst-case (adversarial) choice that gives regret <= sqrt(2 T K ln K) per agent.
    """
    _check_sizes(1, n_arms)
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon (number of rounds T) must be an integer >= 1, got {horizon!r}")
    return math.sqrt(2.0 * math.log(n_arms) / (horizon * n_arms))


class AgentPopulation:
    """N independent agents with K arms each; subclasses define the policy and the update."""

    kind: ClassVar[str] = ""

    def __init__(self, n_agents: int, n_arms: int) -> None:
        _check_sizes(n_agents, n_arms)
        self.n_agents = int(n_agents)
        self.n_arms = int(n_arms)
        self.t = 0  # rounds seen so far
        self._rows = np.arange(self.n_agents)

    # -- policy -------------------------------------------------------------------------
    def probabilities(self) -> np.ndarray:
        """Current policies, shape (N, K), rows sum to 1."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One action per agent, shape (N,), drawn from `probabilities()` with one uniform each."""
        cdf = np.cumsum(self.probabilities(), axis=1)
        u = rng.random(self.n_agents)[:, None] * cdf[:, -1:]
        # The first arm whose cdf exceeds u; zero-probability arms are never chosen.
        return np.count_nonzero(cdf <= u, axis=1).astype(np.int64)

    def best(self) -> np.ndarray:
        """Greedy recommendation: the most probable arm of each agent, shape (N,); ties -> lowest index."""
        return np.argmax(self.probabilities(), axis=1)

    def entropy(self) -> np.ndarray:
        """Entropy of each agent's policy in nats, shape (N,); ln K is uniform."""
        return entr(self.probabilities()).sum(axis=1)

    # -- learning -----------------------------------------------------------------------
    def update(self, actions: np.ndarray, loss: float) -> None:
        """Credit the joint action `actions` (N,) with the scalar loss it received."""
        actions = self._check_actions(actions)
        loss = float(loss)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the loss given to the {self.kind} agents at round {self.t + 1} is {loss}; "
                "the bandits cannot learn from a non-finite loss (check the learning rate and the data)"
            )
        self._update(actions, loss)
        self.t += 1

    def _update(self, actions: np.ndarray, loss: float) -> None:
        raise NotImplementedError

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.n_agents,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be an integer array of shape ({self.n_agents},), one op per agent; "
                f"got dtype {actions.dtype} and shape {actions.shape}"
            )
        if actions.size and (actions.min() < 0 or actions.max() >= self.n_arms):
            raise ValueError(f"actions must lie in [0, {self.n_arms - 1}], got values {actions.min()}..{actions.max()}")
        return actions.astype(np.int64, copy=False)

    # -- checkpointing ------------------------------------------------------------------
    def hparams(self) -> dict[str, Any]:
        """Constructor arguments beyond (N, K); stored in the state and checked on load."""
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly: plain ints, floats, strings and numpy arrays (copies)."""
        return {
            "kind": self.kind,
            "n_agents": self.n_agents,
            "n_arms": self.n_arms,
            "t": self.t,
            "hparams": dict(self.hparams()),
            "arrays": {k: np.array(v, copy=True) for k, v in self._arrays().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; the population must have been built with the same kind, sizes and hparams."""
        try:
            kind, n, k, t, hp, arrays = (state[key] for key in ("kind", "n_agents", "n_arms", "t", "hparams", "arrays"))
        except (KeyError, TypeError):
            raise ConfigError("bandit state is not a state_dict() of nasforge agents (missing fields); the checkpoint is corrupt") from None
        mine = (self.kind, self.n_agents, self.n_arms, self.hparams())
        if (kind, n, k, hp) != mine:
            raise ConfigError(
                f"checkpoint holds {kind} agents {n}x{k} with {hp}, but this run has {self.kind} agents "
                f"{self.n_agents}x{self.n_arms} with {self.hparams()}; resume with the same space and strategy settings"
            )
        expected = self._arrays()
        if set(arrays) != set(expected):
            raise ConfigError(f"bandit state for {kind} must hold arrays {sorted(expected)}, got {sorted(arrays)}")
        self.t = int(t)
        self._load_arrays({name: np.array(a, copy=True) for name, a in arrays.items()})

    @staticmethod
    def from_state_dict(state: dict[str, Any]) -> "AgentPopulation":
        """Rebuild any population from its `state_dict()` (dispatching on its kind)."""
        try:
            kind = state["kind"]
            agents = make_agents(kind, state["n_agents"], state["n_arms"], **state["hparams"])
        except (KeyError, TypeError):
            raise ConfigError("bandit state is not a state_dict() of nasforge agents (missing fields); the checkpoint is corrupt") from None
        agents.load_state_dict(state)
        return agents

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.hparams().items())
        return f"{type(self).__name__}(n_agents={self.n_agents}, n_arms={self.n_arms}{', ' + hp if hp else ''}; t={self.t})"


class UniformAgents(AgentPopulation):
    """Random search: every agent samples uniformly and ignores the loss.

    `best()` is then the lowest arm index for every agent, which on problems with i.i.d. arm values
    recovers the best arm with chance probability 1/K, like a uniformly sampled recommendation.
    """

    kind = "uniform"

    def probabilities(self) -> np.ndarray:
        return np.full((self.n_agents, self.n_arms), 1.0 / self.n_arms)

    def _update(self, actions: np.ndarray, loss: float) -> None:
        pass


class Exp3Agents(AgentPopulation):
    """MANAS (EXP3 per agent): B[i, a_i] += L / pi[i, a_i]; pi ∝ exp(-eta * B), optionally gamma-mixed with uniform.

    Losses must lie in [0, 1] (e.g. the validation error rate, or cross-entropy / ln(classes)):
    larger values are clipped to 1 and negative ones to 0, counted in `n_clipped`, with one warning.
    The paper prints exp(+eta * B); since B accumulates losses the sign is flipped here, so a low
    cumulative loss means a high probability.

    ``baseline=True`` (ours, off by default) credits L - b instead of L, where b is the mean of the
    losses of all earlier rounds. The shift is the same for every arm, so the estimator still ranks arms
    by their expected loss, but its variance falls from about L^2 / pi to (L - b)^2 / pi: with many agents
    each agent's own effect on the shared loss is small against the loss itself (on the M2 problem
    ~0.01 against ~0.5), and without centering that noise hides it for thousands of rounds.
    """

    kind = "manas"

    def __init__(self, n_agents: int, n_arms: int, eta: float, gamma: float = 0.0, baseline: bool = False) -> None:
        super().__init__(n_agents, n_arms)
        if not (isinstance(eta, (int, float, np.floating)) and math.isfinite(eta) and eta > 0):
            raise ConfigError(f"EXP3 learning rate eta must be a finite number > 0, got {eta!r} (default_eta(K, T) gives the standard value)")
        if not (isinstance(gamma, (int, float, np.floating)) and 0.0 <= gamma <= 1.0):
            raise ConfigError(f"EXP3 exploration gamma must be in [0, 1], got {gamma!r} (0 = paper, 0.01 = safe)")
        if not isinstance(baseline, (bool, np.bool_)):
            raise ConfigError(f"EXP3 baseline must be true or false, got {baseline!r}")
        self.eta = float(eta)
        self.gamma = float(gamma)
        self.baseline = bool(baseline)
        self.cum_loss = np.zeros((self.n_agents, self.n_arms))  # B~ in the paper
        self.loss_sum = 0.0  # of the clipped losses so far, for the baseline
        self.n_clipped = 0

    def hparams(self) -> dict[str, Any]:
        return {"eta": self.eta, "gamma": self.gamma, "baseline": self.baseline}

    def probabilities(self) -> np.ndarray:
        p = softmax(-self.eta * self.cum_loss, axis=1)  # scipy subtracts the row max: no overflow
        if self.gamma:
            p = (1.0 - self.gamma) * p + self.gamma / self.n_arms
        return p

    def credits(self) -> np.ndarray:
        """Importance-weighted cumulative loss per (agent, arm), shape (N, K); lower is better."""
        return self.cum_loss.copy()

    def _update(self, actions: np.ndarray, loss: float) -> None:
        clipped = min(max(loss, 0.0), 1.0)
        if clipped != loss:
            if self.n_clipped == 0:
                warnings.warn(
                    f"EXP3 agents expect losses in [0, 1]; got {loss:.4g}, clipped to {clipped:g} "
                    "(normalise the validation loss, e.g. error rate or CE / ln(classes))",
                    stacklevel=3,
                )
            self.n_clipped += 1
        # Importance weight with the probability the action was drawn with, i.e. before this update.
        p_drawn = self.probabilities()[self._rows, actions]
        credit = clipped - (self.loss_sum / self.t if self.baseline and self.t else 0.0)
        self.cum_loss[self._rows, actions] += credit / p_drawn
        self.loss_sum += clipped

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"cum_loss": self.cum_loss, "n_clipped": np.array(self.n_clipped), "loss_sum": np.array(self.loss_sum)}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.cum_loss = arrays["cum_loss"].astype(np.float64).reshape(self.n_agents, self.n_arms)
        self.n_clipped = int(arrays["n_clipped"])
        self.loss_sum = float(arrays["loss_sum"])


class LeastSquaresAgents(AgentPopulation):
    """MANAS-LS: fit L_s ≈ beta · z_s by ridge regression over all rounds; each agent samples ops by Zipf rank.

    z_s is the one-hot encoding of round s (N*K columns, one 1 per agent). Each row sums to N within
    blocks, so beta is only identified up to a constant per agent (whose sum over agents is fixed):
    differences within an agent and the predicted loss of any architecture are what the data pin down.
    The ridge term picks the minimum-norm solution among those and makes the solve well posed.

    The sufficient statistics X^T X and X^T y are accumulated, so an update costs O(N^2) and a refit
    one Cholesky solve of size N*K, independent of t. Measured on this 2-core CPU (loaded, one BLAS
    thread): N*K = 112 -> ~3 ms per refit, 560 (5 cells) -> ~25 ms, 2240 (20 cells) -> ~0.5 s; for
    large N*K use `refit_every` of tens of rounds. Run numpy's BLAS with one thread
    (OPENBLAS_NUM_THREADS=1) next to torch: oversubscribed BLAS threads made the solve ~100x slower.

    Warmup: the policy stays uniform for the first `warmup` rounds. The default is K, which lets each
    agent see roughly every op once before ranks matter. A longer warmup is not needed to make the
    fit well posed (the ridge does that), ops never drawn get credit exactly 0, which ranks them
    first when losses are positive (optimistic exploration), and Zipf keeps drawing every op with
    probability >= 1/(K H_K) (4.6 % for K=8). The spec's N*K (2240 rounds at 20 cells) would spend
    that many rounds sampling uniformly. On the M2 problem (N=14, K=8, T=3000) warmup 0, K and N*K
    all recover the best op for the median agent set equally well, while N*K raises the regret of the
    first 300 rounds (R_300/300 ≈ 0.29 against ≈ 0.26); see benchmarks/manas_bandits.py.
    """

    kind = "manas-ls"

    def __init__(
        self,
        n_agents: int,
        n_arms: int,
        ridge: float = 1e-3,
        refit_every: int = 1,
        warmup: int | None = None,
        keep_history: bool = True,
    ) -> None:
        super().__init__(n_agents, n_arms)
        if not (isinstance(ridge, (int, float, np.floating)) and math.isfinite(ridge) and ridge > 0):
            raise ConfigError(
                f"ridge must be a finite number > 0, got {ridge!r}: the one-hot design is rank-deficient "
                "(each agent's columns sum to 1), so least squares needs a ridge term (1e-3 is a good default)"
            )
        if not isinstance(refit_every, (int, np.integer)) or refit_every < 1:
            raise ConfigError(f"refit_every must be an integer >= 1 (rounds between least-squares solves), got {refit_every!r}")
        if warmup is None:
            warmup = self.n_arms
        if not isinstance(warmup, (int, np.integer)) or warmup < 0:
            raise ConfigError(f"warmup must be an integer >= 0 (rounds of uniform sampling), got {warmup!r}")
        self.ridge = float(ridge)
        self.refit_every = int(refit_every)
        self.warmup = int(warmup)
        self.keep_history = bool(keep_history)
        nk = self.n_agents * self.n_arms
        self._offsets = self._rows * self.n_arms  # column of agent i's arm 0
        self.gram = np.zeros((nk, nk))  # X^T X: co-occurrence counts of (agent, op) pairs
        self.moment = np.zeros(nk)  # X^T y: summed loss per (agent, op)
        self.beta = np.zeros(nk)  # credits from the last refit
        self._zipf = zipf_probabilities(self.n_arms)
        self._hist_actions = np.zeros((0, self.n_agents), dtype=np.min_scalar_type(self.n_arms - 1))
        self._hist_losses = np.zeros(0)

    def hparams(self) -> dict[str, Any]:
        return {"ridge": self.ridge, "refit_every": self.refit_every, "warmup": self.warmup, "keep_history": self.keep_history}

    def credits(self) -> np.ndarray:
        """Estimated loss contribution per (agent, op), shape (N, K), as of the last refit; lower is better."""
        return self.beta.reshape(self.n_agents, self.n_arms).copy()

    def best(self) -> np.ndarray:
        """The op with the lowest credit per agent (the Zipf mode; also meaningful during warmup)."""
        return np.argmin(self.credits(), axis=1)

    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """All (actions (t, N), losses (t,)) seen so far (empty if keep_history=False)."""
        n = self.t if self.keep_history else 0
        return self._hist_actions[:n].astype(np.int64), self._hist_losses[:n].copy()

    def probabilities(self) -> np.ndarray:
        if self.t < self.warmup:
            return np.full((self.n_agents, self.n_arms), 1.0 / self.n_arms)
        return _zipf_policy(self.credits(), self._zipf)

    def refit(self) -> None:
        """Solve (X^T X + ridge I) beta = X^T y."""
        a = self.gram.copy()
        a.flat[:: a.shape[0] + 1] += self.ridge  # add ridge * I in place
        # gram and moment are finite by construction (update() rejects non-finite losses).
        self.beta = cho_solve(cho_factor(a, lower=True, check_finite=False), self.moment, check_finite=False)

    def _update(self, actions: np.ndarray, loss: float) -> None:
        cols = self._offsets + actions  # distinct columns, so fancy-index += adds exactly once each
        self.gram[np.ix_(cols, cols)] += 1.0
        self.moment[cols] += loss
        if self.keep_history:
            self._append_history(actions, loss)
        t = self.t + 1
        if t % self.refit_every == 0 or t == self.warmup:
            self.refit()

    def _append_history(self, actions: np.ndarray, loss: float) -> None:
        if self.t == len(self._hist_losses):  # grow by doubling: amortised O(N) per round
            cap = max(16, 2 * self.t)
            grown_a = np.zeros((cap, self.n_agents), dtype=self._hist_actions.dtype)
            grown_a[: self.t] = self._hist_actions[: self.t]
            grown_l = np.zeros(cap)
            grown_l[: self.t] = self._hist_losses[: self.t]
            self._hist_actions, self._hist_losses = grown_a, grown_l
        self._hist_actions[self.t] = actions
        self._hist_losses[self.t] = loss

    def _arrays(self) -> dict[str, np.ndarray]:
        n = self.t if self.keep_history else 0
        return {
            "gram": self.gram,
            "moment": self.moment,
            "beta": self.beta,
            "history_actions": self._hist_actions[:n],
            "history_losses": self._hist_losses[:n],
        }

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        nk = self.n_agents * self.n_arms
        self.gram = arrays["gram"].astype(np.float64).reshape(nk, nk)
        self.moment = arrays["moment"].astype(np.float64).reshape(nk)
        self.beta = arrays["beta"].astype(np.float64).reshape(nk)
        n = self.t if self.keep_history else 0
        hist_a, hist_l = arrays["history_actions"], arrays["history_losses"]
        if hist_a.shape != (n, self.n_agents) or hist_l.shape != (n,):
            raise ConfigError(f"bandit state history has shapes {hist_a.shape} and {hist_l.shape}, expected ({n}, {self.n_agents}) and ({n},)")
        self._hist_actions = hist_a.astype(self._hist_actions.dtype)
        self._hist_losses = hist_l.astype(np.float64)


def _zipf_policy(credits: np.ndarray, zipf: np.ndarray) -> np.ndarray:
    """Zipf probabilities by ascending credit rank per row; exactly tied credits share their ranks' mass."""
    n, k = credits.shape
    order = np.argsort(credits, axis=1, kind="stable")
    ranked = np.take_along_axis(credits, order, axis=1)
    # Tie groups along each sorted row; give each member the mean Zipf mass of the group, so that
    # e.g. never-sampled ops (credit exactly 0) are treated alike rather than by index.
    starts = np.ones((n, k), dtype=bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    group = np.cumsum(starts, axis=1) - 1 + (np.arange(n) * k)[:, None]
    mass = np.bincount(group.ravel(), weights=np.broadcast_to(zipf, (n, k)).ravel(), minlength=n * k)
    size = np.bincount(group.ravel(), minlength=n * k)
    p = np.empty((n, k))
    np.put_along_axis(p, order, mass[group] / size[group], axis=1)
    return p


AGENTS: dict[str, type[AgentPopulation]] = {
    UniformAgents.kind: UniformAgents,
    Exp3Agents.kind: Exp3Agents,
    LeastSquaresAgents.kind: LeastSquaresAgents,
}


def make_agents(kind: str, n_agents: int, n_arms: int, **hparams: Any) -> AgentPopulation:
    """Build agents by name: 'manas' (EXP3), 'manas-ls' (least squares + Zipf) or 'uniform'."""
    if kind not in AGENTS:
        raise ConfigError(choices_message("bandit agent kind", str(kind), list(AGENTS)))
    try:
        return AGENTS[kind](n_agents, n_arms, **hparams)
    except TypeError as e:  # unknown keyword for this kind
        raise ConfigError(f"bad options for {kind} agents: {e}") from None


# -- synthetic problems (spec §4.6, claim M2) ---------------------------------------------------------


class AdditiveProblem:
    """L(a) = sum_i beta[i, a_i] + eps, eps ~ N(0, noise_std^2): the setting MANAS-LS models exactly."""

    def __init__(self, beta: np.ndarray, noise_std: float = 0.02) -> None:
        beta = np.asarray(beta, dtype=np.float64)
        if beta.ndim != 2:
            raise ConfigError(f"beta must have shape (agents, arms), got {beta.shape}")
        _check_sizes(beta.shape[0], beta.shape[1])
        if not noise_std >= 0:
            raise ConfigError(f"noise_std must be >= 0, got {noise_std!r}")
        self.beta = beta
        self.noise_std = float(noise_std)
        self.n_agents, self.n_arms = beta.shape

    @classmethod
    def random(cls, n_agents: int, n_arms: int, rng: np.random.Generator, noise_std: float = 0.02) -> "AdditiveProblem":
        """beta[i, k] ~ U(0, 1/N), so the noise-free loss lies in [0, 1]."""
        _check_sizes(n_agents, n_arms)
        return cls(rng.uniform(0.0, 1.0 / n_agents, size=(n_agents, n_arms)), noise_std)

    def expected_loss(self, actions: np.ndarray) -> np.ndarray | float:
        """Noise-free loss of actions (..., N)."""
        return self.beta[np.arange(self.n_agents), np.asarray(actions)].sum(axis=-1)[()]

    def loss(self, actions: np.ndarray, rng: np.random.Generator) -> float:
        return float(self.expected_loss(actions)) + (float(rng.normal(0.0, self.noise_std)) if self.noise_std else 0.0)

    @property
    def optimal_loss(self) -> float:
        return float(self.beta.min(axis=1).sum())

    def best_actions(self) -> np.ndarray:
        return self.beta.argmin(axis=1)


class GaussianSqueeze:
    """Non-additive coordination problem (Gaussian squeeze, after Colby et al. 2015).

    Agent i's arm k contributes the amount k / (K-1) in [0, 1]; the amounts sum to x in [0, N], and
    the objective G(x) = x exp(-(x - mu)^2 / sigma^2) is to be maximised. The loss is
    1 - G(x) / G*, with G* the best G over reachable x, so it lies in [0, 1] and its minimum is 0:
    the instantaneous regret is the noise-free loss. Many joint actions are optimal, so only regret
    (not per-agent recovery) is meaningful. The defaults mu = sigma = N/4 [S: the paper's appendix
    with its values was not available] put the optimum (x* ≈ 0.34 N) well below the uniform-random
    mean N/2, where the loss is ≈ 0.39, so agents must jointly shift towards small amounts.
    """

    def __init__(self, n_agents: int, n_arms: int, mu: float | None = None, sigma: float | None = None, noise_std: float = 0.0) -> None:
        _check_sizes(n_agents, n_arms)
        self.n_agents, self.n_arms = int(n_agents), int(n_arms)
        self.mu = float(n_agents / 4 if mu is None else mu)
        self.sigma = float(n_agents / 4 if sigma is None else sigma)
        if not self.sigma > 0:
            raise ConfigError(f"sigma must be > 0, got {sigma!r}")
        if not noise_std >= 0:
            raise ConfigError(f"noise_std must be >= 0, got {noise_std!r}")
        self.noise_std = float(noise_std)
        reachable = np.arange(self.n_agents * (self.n_arms - 1) + 1) / (self.n_arms - 1)
        self.g_best = float(self._g(reachable).max())
        if not self.g_best > 0:
            raise ConfigError(f"mu={self.mu}, sigma={self.sigma} leave G(x) = 0 on every reachable x in [0, {self.n_agents}]")

    def _g(self, x: np.ndarray) -> np.ndarray:
        return x * np.exp(-((x - self.mu) ** 2) / self.sigma**2)

    def expected_loss(self, actions: np.ndarray) -> np.ndarray | float:
        x = np.asarray(actions).sum(axis=-1) / (self.n_arms - 1)
        return (1.0 - self._g(x) / self.g_best)[()]

    def loss(self, actions: np.ndarray, rng: np.random.Generator) -> float:
        return float(self.expected_loss(actions)) + (float(rng.normal(0.0, self.noise_std)) if self.noise_std else 0.0)

    optimal_loss = 0.0


def simulate(agents: AgentPopulation, problem: AdditiveProblem | GaussianSqueeze, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """Play `rounds` rounds (sample, observe the noisy loss, update); return the per-round pseudo-regret.

    Regret at round t is the noise-free loss of the sampled architecture minus the best achievable loss.
    """
    if (agents.n_agents, agents.n_arms) != (problem.n_agents, problem.n_arms):
        raise ConfigError(
            f"agents are {agents.n_agents}x{agents.n_arms} but the problem is {problem.n_agents}x{problem.n_arms}"
        )
    regret = np.empty(rounds)
    for t in range(rounds):
        actions = agents.sample(rng)
        agents.update(actions, problem.loss(actions, rng))
        regret[t] = problem.expected_loss(actions) - problem.optimal_loss
    return regret
