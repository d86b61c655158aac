"""The bookkeeping every multi-trial strategy shares.

`MultiTrialStrategy` runs a search as *rounds*: propose architectures, score them with ``ctx.evaluate``
(executor + journal), update, checkpoint. The checkpoint holds the strategy's state and its random
generator, so a resumed search proposes exactly what the interrupted one would have; trials that had
finished are answered by the journal without running again.

Budget: ``ctx.budget.trials`` counts *distinct* architectures scored (a re-proposed architecture reuses its
known score and costs nothing). ``ctx.budget.seconds`` is checked before every trial starts (a trial is the
step of a multi-trial search): after the deadline no new trial starts (a scratch trial running in this
process stops at its next epoch end and stays pending; one on a Ray worker finishes), the round is cut there (its unstarted trials stay pending in the journal, and the strategy
does not learn from the incomplete round), the state is checkpointed and the search ends with the best
architecture scored so far (``metrics.stopped = "seconds"``).

History: one record per scored architecture, in order: ``trial`` (1-based), ``arch``, ``score``,
``best_score`` and ``best_arch`` (best so far by score), ``round``. Benchmarks read anytime curves from it.
In a run directory it is appended round by round to ``history.jsonl``; the checkpoint holds only how many
records it covers (so checkpointing costs the same at trial 20,000 as at trial 20).
"""
from __future__ import annotations

import itertools
import json
import random
from typing import Any, ClassVar

from .. import progress
from ..errors import ConfigError, DataError
from ..spaces.base import Arch
from ..utils import atomic_write_bytes, to_jsonable
from .base import SearchContext, SearchResult, Strategy


def arch_key(arch: Arch) -> str:
    """A hashable, order-preserving key of a (canonical) JSON architecture."""
    return arch if isinstance(arch, str) else json.dumps(arch, separators=(",", ":"))


def _score(result: dict[str, Any]) -> float | None:
    s = result.get("score")
    return None if s is None or s != s else float(s)  # s != s: NaN from a diverged trial


class MultiTrialStrategy(Strategy):
    kind: ClassVar[str] = "multi-trial"

    # -- hooks ------------------------------------------------------------------------------
    def setup(self, ctx: SearchContext) -> None:
        """Create the strategy's state (called before restoring a checkpoint)."""

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        """The next round's architectures (canonical); an empty list ends the search.
        `remaining` is the number of new trials the budget still allows (None = unlimited)."""
        raise NotImplementedError

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        """Learn from a finished round (scores in the order of `propose`; None = the trial failed)."""

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def extra_metrics(self) -> dict[str, Any]:
        return {}

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """A trial budget larger than the space can never be spent (a trial is a distinct architecture, each
        scored once): refused with the space's size rather than stopping short without a word. Subclasses that
        override this call it (multi-fidelity strategies, whose trials are full-evaluation equivalents, do not)."""
        trials, size = (cfg.get("budget") or {}).get("trials"), space.size()
        if trials is not None and size is not None and trials > size:
            raise ConfigError(f"--trials {trials} exceeds the {size:,} distinct architectures of space "
                              f"'{space.name}' (strategy '{self.name}' scores each at most once); use --trials {size} "
                              "or fewer")

    # -- shared loop ------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.budget.trials is None and ctx.budget.seconds is None:
            raise ConfigError(f"strategy '{self.name}' needs a trial or time budget (--trials N or --seconds S)")
        if ctx.estimator is None:
            raise ConfigError(f"strategy '{self.name}' scores architectures with an estimator: pass --estimator "
                              "(scratch trains each one; table looks it up in a benchmark table)")
        rng = random.Random(ctx.seed)
        self.scores: dict[str, float | None] = {}  # arch key -> score of every architecture scored so far
        self.history: list[dict[str, Any]] = []
        self.round = 0
        self.stopped_by_time = False
        self.ran_dry = False
        self.setup(ctx)
        self._persisted = 0  # history records already appended to history.jsonl
        state = ctx.restore()
        if state is not None and state.get("kind") == f"multi-trial:{self.name}":
            rng.setstate(state["rng"])
            self.history, self.round = self._restore_history(ctx, state), state["round"]
            self.scores = {arch_key(h["arch"]): h["score"] for h in self.history}
            self._persisted = len(self.history)
            self.load_state(state["strategy"])
            if ctx.run is not None:  # drop trial records of the round that was interrupted; it runs again
                resumed = self.round
                ctx.run.truncate_metrics(lambda m: m.get("event") != "trial" or (m.get("round") or 0) < resumed)
        with progress.bar(f"{self.name}: trials", ctx.budget.trials) as bar:
            bar.advance(len(self.history))
            ctx.trial_bar, ctx.trials_seen = bar, len(self.history)
            try:
                while not self._exhausted(ctx):
                    remaining = None if ctx.budget.trials is None else ctx.budget.trials - len(self.history)
                    archs = self.propose(ctx, rng, remaining)
                    if not archs:
                        self.ran_dry = True  # the strategy has nothing new to propose: said in the result
                        break
                    new = list(dict.fromkeys(arch_key(a) for a in archs if arch_key(a) not in self.scores))
                    if remaining is not None and len(new) > remaining:
                        raise AssertionError(f"{self.name} proposed {len(new)} new trials with {remaining} left in the budget")
                    by_key = {arch_key(a): a for a in archs}
                    cut = False
                    if new:
                        results = ctx.evaluate([by_key[k] for k in new], round=self.round)
                        for k, res in zip(new, results):
                            if res is None:  # never started: the deadline passed
                                cut = True
                            else:
                                self._record(k, by_key[k], _score(res))
                    if not cut:
                        self.observe(ctx, archs, [self.scores[arch_key(a)] for a in archs])
                    self.round += 1
                    self._checkpoint(ctx, rng)
                    if cut:
                        self.stopped_by_time = True
                        break
            finally:
                ctx.trial_bar = None
        return self._result(ctx)

    HISTORY = "history.jsonl"

    def _checkpoint(self, ctx: SearchContext, rng: random.Random) -> None:
        """Append this round's trial records to ``history.jsonl``, then checkpoint the small state with the
        number of records it covers. Each round writes what is new, not the whole history again (a query-mode
        search of 20k trials otherwise slows quadratically); resume reads the first ``history_len`` records."""
        self._append_history(ctx)
        ctx.checkpoint({"kind": f"multi-trial:{self.name}", "rng": rng.getstate(), "history_len": len(self.history),
                        "round": self.round, "strategy": self.state()})

    def _append_history(self, ctx: SearchContext) -> None:
        """Append the trial records not yet in ``history.jsonl`` (those past ``self._persisted``)."""
        if ctx.run is not None and ctx.is_main and len(self.history) > self._persisted:
            new = self.history[self._persisted:]
            with open(ctx.run.file(self.HISTORY), "a") as f:  # flushed on close; like checkpoint.pt, not fsynced
                f.write("".join(json.dumps(to_jsonable(h)) + "\n" for h in new))
        self._persisted = max(self._persisted, len(self.history))

    def _restore_history(self, ctx: SearchContext, state: dict[str, Any]) -> list[dict[str, Any]]:
        """The trial records a checkpoint covers (records appended after it, by the round that was
        interrupted, are dropped from the file: that round runs again). Checkpoints written before
        history.jsonl existed hold the history themselves."""
        if "history" in state:
            return state["history"]
        n = int(state["history_len"])
        path = ctx.run.file(self.HISTORY)
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) < n:
            raise DataError(f"{path} holds {len(lines)} trial records, but the checkpoint covers {n}; the run "
                            "directory is damaged")
        if len(lines) > n and ctx.is_main:
            atomic_write_bytes(path, "".join(line + "\n" for line in lines[:n]).encode())
        return [json.loads(line) for line in lines[:n]]

    def _exhausted(self, ctx: SearchContext) -> bool:
        if ctx.budget.trials is not None and len(self.history) >= ctx.budget.trials:
            return True
        if ctx.out_of_time():
            self.stopped_by_time = True
            return True
        return False

    def _record(self, key: str, arch: Arch, score: float | None) -> None:
        self.scores[key] = score
        best = self.history[-1] if self.history else None
        better = score is not None and (best is None or best["best_score"] is None or score > best["best_score"])
        self.history.append({
            "trial": len(self.history) + 1, "round": self.round, "arch": arch, "score": score,
            "best_score": score if better else (best["best_score"] if best else None),
            "best_arch": arch if better else (best["best_arch"] if best else None),
        })

    def _result(self, ctx: SearchContext) -> SearchResult:
        scored = [h for h in self.history if h["score"] is not None]
        if not scored and not self.history and self.stopped_by_time:
            raise ConfigError(f"strategy '{self.name}': the time budget ({ctx.budget.seconds:g} s) ended before any "
                              "trial finished; raise --seconds")
        if not scored:
            raise ConfigError(f"strategy '{self.name}' finished without a single successful trial "
                              f"({len(self.history)} failed); see the run's trials.sqlite for the errors")
        best = self.history[-1]
        metrics: dict[str, Any] = {"trials": len(self.history), "failed": len(self.history) - len(scored),
                                   "rounds": self.round, "best_score": best["best_score"], **self.extra_metrics()}
        if self.stopped_by_time:
            metrics["stopped"] = "seconds"
        if getattr(self, "ran_dry", False) and ctx.budget.trials is not None and len(self.history) < ctx.budget.trials:
            size = ctx.space.size()
            metrics.setdefault("warnings", []).append(
                f"{self.name} stopped after {len(self.history)} of the {ctx.budget.trials} trials of its budget: it "
                "found no architecture left to propose that it had not scored (or that its constraints admit)" + (
                    f" (space '{ctx.space.name}' holds {size:,})" if size is not None else ""))
        truth = getattr(ctx.estimator, "ground_truth", None)
        if callable(truth):  # benchmark tables: the held-out ground truth of the recommendation only
            metrics["ground_truth"] = truth(ctx.space, best["best_arch"])
        return SearchResult(arch=best["best_arch"], history=self.history, metrics=metrics)


#: a categorical space up to this size is enumerated when random draws keep hitting scored architectures
ENUMERATE_MAX = 100_000


def sample_new(ctx: SearchContext, rng: random.Random, seen: set[str], attempts: int = 1000) -> Arch | None:
    """A random architecture not in `seen`, or None when the space is used up. After `attempts` draws in a row
    found only seen ones, a categorical space of at most ENUMERATE_MAX architectures is enumerated and one of
    those left is drawn uniformly (so a budget equal to the space's size is spent in full); other spaces give
    None then."""
    for _ in range(attempts):
        arch = ctx.space.validate(ctx.space.sample(rng))
        if arch_key(arch) not in seen:
            return arch
    enc, size = ctx.space.categorical(), ctx.space.size()
    if enc is None or size is None or size > ENUMERATE_MAX:
        return None
    left = [a for a in (ctx.space.validate(enc.decode(c)) for c in itertools.product(range(enc.choices),
                                                                                    repeat=enc.positions))
            if arch_key(a) not in seen]
    return rng.choice(left) if left else None


def sample_distinct(ctx: SearchContext, rng: random.Random, seen: set[str], n: int) -> list[Arch]:
    """Up to `n` random architectures, distinct and not in `seen` (fewer when the space is used up)."""
    seen, archs = set(seen), []
    for _ in range(n):
        arch = sample_new(ctx, rng, seen)
        if arch is None:
            break
        archs.append(arch)
        seen.add(arch_key(arch))
    return archs
