"""Multi-fidelity multi-trial search, the machinery of successive halving, Hyperband and ASHA (the strategies
`nasforge.strategies.sh`, `.hyperband`, `.asha` are thin modules on it).

A *fidelity* is how long a candidate is trained before it is scored (epochs): the scratch estimator trains
for any number of epochs, the table estimator reads the training lengths its table holds (NB201: 12 and
200 epochs). Fidelities form a ladder of *rungs* r_0 < r_1 < ... < r_K; a scheduler starts configurations
(architectures) on a low rung and *promotes* the best 1/eta of a rung to the next one.

* ``sh`` -- successive halving (Jamieson & Talwalkar 2016, as used in Li et al., JMLR 2018): brackets of
  ``configs`` configurations on rung 0; once a rung has finished, its best floor(n/eta) go up; brackets
  repeat until the budget is spent. Synchronous: a rung's promotions wait for the whole rung.
* ``hyperband`` -- Hyperband (Li et al., "Hyperband", JMLR 2018): cycles through the brackets s = K..0, bracket
  s starting ceil((K+1) eta^s / (s+1)) configurations on rung K-s and halving them synchronously.
* ``asha`` -- asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter
  Tuning", MLSys 2020, Algorithm 2): whenever a worker is free, promote a configuration that is in the top
  floor(n/eta) of its rung and not promoted yet (highest rung first), else start a new one on rung 0.

They are strategies of their own, not an option of random/evolution, because they change what the budget
counts (fidelity-weighted cost, not distinct architectures), score one architecture several times, and ASHA
decides per finished trial instead of per round; the proposal of *new* configurations is pluggable
(``sampler``: uniform random as in the papers, or the regularised-evolution engine told each
configuration's score on its first rung).

Budget: ``--trials N`` is N *full-evaluation equivalents*: a trial at fidelity r costs r / r_K, charged when
it is issued; the search issues no trial that would overspend. Each trial is a complete training run at its
rung's fidelity (a promoted configuration is trained again from scratch, with its own learning-rate schedule,
rather than continued from its lower-rung checkpoint): the trial spec alone then says what the score means,
any worker -- a Ray worker on another machine included -- can run it without the driver's files, and a
table's 12- and 200-epoch columns are such separate runs too. The price is the lower rung's epochs once more
per promotion (at most 1/eta of the promoted trial's cost), and it is charged to the budget.

State and resume: every finished trial is appended to the journal's rung log (``TrialJournal.record_rung``)
in the order the scheduler took it into account. Promotions are a function of that sequence and of the
seeded sampler, so ``--resume`` replays the log -- the scheduler makes the same promotions without running
anything -- and continues live where the log ends. Decision order: with the local executor (or a table,
which runs in-process) ASHA runs ``slots`` simulated workers, each trial taking time proportional to its
fidelity, and takes trials in order of simulated completion (ties: issue order); results are therefore the
same in every process, interrupted or not. On Ray, ``order=completion`` (default) takes trials as they really
finish: a resumed run replays the recorded order exactly, but two fresh runs may promote differently when
trials finish in a different order; ``order=simulated`` runs trials in parallel on the workers yet takes them
in the simulated order, which makes Ray runs identical to local ones. Successive halving and Hyperband only
decide once a rung is complete, so they are deterministic on every executor. Failed trials (score None or
NaN) are logged and rank below every score: they are never promoted.
"""
from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from .. import progress
from ..errors import ConfigError
from ..options import Opt
from ..registry import ESTIMATORS
from ..spaces.base import Arch, SearchSpace
from ..utils import atomic_write_bytes
from .base import SearchContext, SearchResult
from .evolution import RegularizedEvolution
from .multitrial import MultiTrialStrategy, _score, arch_key, sample_new


# -- the rung ladder ----------------------------------------------------------------------------------
def rung_levels(eta: int, min_fidelity: int | None, max_fidelity: int | None, explicit: list[int] | None,
                available: list[int] | None, default_max: int, unit: str = "epochs") -> list[int]:
    """The fidelities of the rungs, lowest first.

    `explicit` (``rung_levels``) is used as given; otherwise, when the estimator offers only some
    fidelities (`available`, a table), the rungs are those between `min_fidelity` and `max_fidelity`;
    otherwise they are geometric, r_k = max / eta^(K-k) rounded, K = floor(log_eta(max / min)) (Hyperband's
    ladder). Defaults: min = the smallest available fidelity (1 for training), max = `default_max`.

    Raises:
        ConfigError: max < min, fewer than two rungs, or a fidelity the estimator does not offer.
    """
    lo = min_fidelity if min_fidelity is not None else (available[0] if available else 1)
    hi = max_fidelity if max_fidelity is not None else default_max
    if explicit:
        levels = [int(x) for x in explicit]
        if any(b <= a for a, b in zip(levels, levels[1:])) or levels[0] < 1:
            raise ConfigError(f"rung_levels must be increasing whole numbers >= 1; got {explicit}")
        if min_fidelity is not None or max_fidelity is not None:
            raise ConfigError("give rung_levels or min_fidelity/max_fidelity, not both")
    else:
        if hi < lo:
            raise ConfigError(f"max_fidelity ({hi} {unit}) is below min_fidelity ({lo} {unit})")
        if available:
            levels = [f for f in available if lo <= f <= hi]
        else:
            k = int(math.floor(math.log(hi / lo) / math.log(eta) + 1e-9))
            levels = sorted({max(lo, int(round(hi / eta ** (k - i)))) for i in range(k + 1)})
    if available:
        asked = levels if explicit else [lo, hi]  # an explicit ladder, or the ends the user asked for
        missing = [f for f in asked if f not in available]
        if missing:
            raise ConfigError(f"the estimator's table holds fidelities {', '.join(map(str, available))} {unit}; "
                              f"{missing[0]} is not one of them")
    if len(levels) < 2:
        raise ConfigError(f"multi-fidelity search needs at least two rungs; fidelities {lo}..{hi} {unit} with "
                          f"eta={eta} give {levels} (raise max_fidelity -- for scratch trials their train.epochs in "
                          "estimator_options -- or lower min_fidelity or eta)")
    return levels


def estimator_fidelity(estimator_cls: Any, space: SearchSpace, options: dict[str, Any]) -> dict[str, Any]:
    """`Estimator.fidelity` of an estimator class, as a ConfigError when it has none."""
    fidelity = getattr(estimator_cls, "fidelity", None)
    if fidelity is None:
        raise ConfigError(f"estimator '{getattr(estimator_cls, 'name', estimator_cls)}' has no fidelity to vary")
    return fidelity(space, options or {})


# -- schedulers: pure decision logic, no I/O ----------------------------------------------------------
@dataclass
class Job:
    """One trial a scheduler asks for: configuration `config` (0-based, in order of sampling) on `rung`."""

    job: int
    config: int
    arch: Arch
    rung: int
    fidelity: int
    bracket: int


def _ranked(members: list[tuple[int, float | None]]) -> list[int]:
    """Configurations by score, best first (ties: the earlier configuration); failed ones left out."""
    return [c for s, c in sorted((-s, c) for c, s in members if s is not None)]


class Scheduler:
    """Decides which trial runs next. `ask()` -> a Job, or None (nothing to start until a running trial
    finishes, or nothing left); `tell(job, score)` with score None for a failed trial."""

    def __init__(self, levels: list[int], eta: int, new_config: Callable[[], Arch | None]) -> None:
        self.levels, self.eta, self.new_config = levels, eta, new_config
        self.K = len(levels) - 1
        self.archs: list[Arch] = []  # config id -> architecture
        self.jobs = 0
        self.exhausted = False  # the sampler found no new architecture

    def _sample(self) -> int | None:
        if self.exhausted:
            return None
        arch = self.new_config()
        if arch is None:
            self.exhausted = True
            return None
        self.archs.append(arch)
        return len(self.archs) - 1

    def _job(self, config: int, rung: int, bracket: int) -> Job:
        self.jobs += 1
        return Job(self.jobs - 1, config, self.archs[config], rung, self.levels[rung], bracket)

    def ask(self) -> Job | None:
        raise NotImplementedError

    def tell(self, job: Job, score: float | None) -> None:
        raise NotImplementedError


class SyncHalving(Scheduler):
    """Successive halving in brackets, each a (start rung, configurations) pair from `plan`; used by both
    ``sh`` (every bracket starts on rung 0) and ``hyperband`` (brackets s = K..0)."""

    def __init__(self, levels: list[int], eta: int, new_config: Callable[[], Arch | None],
                 plan: Callable[[int], tuple[int, int]]) -> None:
        super().__init__(levels, eta, new_config)
        self.plan = plan  # bracket index -> (start rung, number of configurations)
        self.bracket = -1
        self.rung = 0
        self.members: list[int] = []  # configurations on the current rung of the current bracket
        self.to_issue: deque[int] = deque()
        self.results: dict[int, float | None] = {}

    def _next_bracket(self) -> bool:
        self.bracket += 1
        start, n = self.plan(self.bracket)
        configs = []
        for _ in range(n):
            c = self._sample()
            if c is None:
                break
            configs.append(c)
        if not configs:
            return False
        self.rung, self.members, self.results = start, configs, {}
        self.to_issue = deque(configs)
        return True

    def ask(self) -> Job | None:
        while True:
            if self.to_issue:
                return self._job(self.to_issue.popleft(), self.rung, self.bracket)
            if self.bracket >= 0 and len(self.results) < len(self.members):
                return None  # synchronous: wait for the rest of the rung
            ranked = _ranked(list(self.results.items())) if self.bracket >= 0 else []
            if self.bracket >= 0 and self.rung < self.K and ranked:
                keep = ranked[: max(1, len(self.members) // self.eta)]
                self.rung, self.members, self.results = self.rung + 1, keep, {}
                self.to_issue = deque(keep)
                continue
            if not self._next_bracket():
                return None

    def tell(self, job: Job, score: float | None) -> None:
        if job.bracket == self.bracket and job.rung == self.rung:
            self.results[job.config] = score


class ASHAScheduler(Scheduler):
    """Asynchronous successive halving (Li et al. 2020, Algorithm 2, minimum early-stopping rate 0)."""

    def __init__(self, levels: list[int], eta: int, new_config: Callable[[], Arch | None]) -> None:
        super().__init__(levels, eta, new_config)
        self.rungs: list[list[tuple[int, float | None]]] = [[] for _ in levels]  # finished, in decision order
        self.promoted: list[set[int]] = [set() for _ in levels]

    def ask(self) -> Job | None:
        for k in range(self.K - 1, -1, -1):
            quota = len(self.rungs[k]) // self.eta
            for c in _ranked(self.rungs[k])[:quota]:
                if c not in self.promoted[k]:
                    self.promoted[k].add(c)
                    return self._job(c, k + 1, 0)
        c = self._sample()
        return None if c is None else self._job(c, 0, 0)

    def tell(self, job: Job, score: float | None) -> None:
        self.rungs[job.rung].append((job.config, score))


# -- the shared driver -----------------------------------------------------------------------------------
COMMON = {
    "eta": Opt(3, ">=2", help="promotion ratio: the best 1/eta of a rung go up a rung"),
    "min_fidelity": Opt(None, ">=1", type=int, help="fidelity (epochs) of the lowest rung (default: the estimator's smallest)"),
    "max_fidelity": Opt(None, ">=1", type=int, help="fidelity (epochs) of the highest rung (default: scratch: train.epochs; table: its longest)"),
    "rung_levels": Opt(None, type=list, items=int, help="explicit rung fidelities, increasing (instead of min/max_fidelity)"),
    "sampler": Opt("random", choices=("random", "evolution"), help="how new configurations are proposed"),
    "population": Opt(20, ">=1", help="sampler=evolution: population size"),
    "sample_size": Opt(5, ">=1", help="sampler=evolution: tournament size"),
}


class MultiFidelityStrategy(MultiTrialStrategy):
    """The driver shared by sh, hyperband and asha: issues the scheduler's jobs to the executor's trial
    stream, keeps `slots` in flight, logs each decision to the journal's rung log, replays it on resume."""

    scheduler_name: ClassVar[str] = ""

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        unused = sorted({"population", "sample_size"} & set(hparams)) if self.hp["sampler"] != "evolution" else []
        if unused:
            raise ConfigError(f"strategy '{self.name}': {', '.join(unused)} apply only with sampler=evolution")
        lo, hi = self.hp["min_fidelity"], self.hp["max_fidelity"]
        if lo is not None and hi is not None and hi < lo:
            raise ConfigError(f"strategy '{self.name}': max_fidelity ({hi}) is below min_fidelity ({lo})")
        if self.hp["rung_levels"] is not None:
            rung_levels(self.hp["eta"], lo, hi, self.hp["rung_levels"], None, 1)  # shape checks only

    # -- configuration ------------------------------------------------------------------------------
    def levels_for(self, estimator_cls: Any, space: SearchSpace, options: dict[str, Any]) -> tuple[list[int], str]:
        info = estimator_fidelity(estimator_cls, space, options)
        levels = rung_levels(self.hp["eta"], self.hp["min_fidelity"], self.hp["max_fidelity"], self.hp["rung_levels"],
                             info["levels"], info["max"], info["unit"])
        return levels, info["unit"]

    def preflight(self, space: SearchSpace, cfg: dict[str, Any]) -> None:
        """Impossible ladders and fidelities the estimator lacks fail here, before a run directory exists."""
        self.levels_for(ESTIMATORS.get(cfg["estimator"]), space, cfg.get("estimator_options") or {})
        if cfg["executor"] != "ray" and self.hp.get("order", "simulated") != "simulated":
            raise ConfigError(f"strategy '{self.name}': order=completion needs --executor ray (trials run one at "
                              "a time here, in the simulated order)")

    def make_scheduler(self, levels: list[int], new_config: Callable[[], Arch | None]) -> Scheduler:
        raise NotImplementedError

    # -- the loop -----------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.budget.trials is None and ctx.budget.seconds is None:
            raise ConfigError(f"strategy '{self.name}' needs a budget: --trials N (full-evaluation equivalents) "
                              "or --seconds S")
        if ctx.estimator is None:
            raise ConfigError(f"strategy '{self.name}' scores architectures with an estimator: pass --estimator "
                              "scratch (epochs as fidelity) or table (the table's training lengths)")
        est = ctx.estimator
        levels, unit = self.levels_for(type(est), ctx.space, {"train": getattr(est, "train", None) or {}})
        self.levels, self.unit = levels, unit
        metric_at = getattr(est, "metric_at", None)  # a table: which column each rung reads
        self.signals = {str(r): f"{est.dataset}_{metric_at(ctx.space, r)}" for r in levels} if callable(metric_at) else None
        top = levels[-1]
        rng = random.Random(ctx.seed)
        self.scores, self.history, self.round, self.stopped_by_time = {}, [], 0, False
        self._told: set[int] = set()  # configurations whose first score the sampler has seen
        sched = self.make_scheduler(levels, self._sampler(ctx, rng))

        local = est.runs_in_process or ctx.executor is None
        if local:
            from ..runs.executors import LocalExecutor

            executor = LocalExecutor()
        else:
            executor = ctx.executor
        simulated = local or self.hp.get("order", "simulated") == "simulated"
        slots = self.hp.get("slots") or (1 if local else executor.slots)
        journal = ctx.journal
        ctx.restore()  # only for the wall clock already spent (--seconds); the rung log is the scheduler's state
        log = journal.rung_log()
        if ctx.run is not None:  # trial events after the last recorded decision are logged again
            ctx.run.truncate_metrics(lambda m: m.get("event") != "trial" or m.get("seq", -1) < len(log))
        self._persisted = self._keep_history_lines(ctx, len(log))
        budget = ctx.budget.trials
        stop = ctx.out_of_time if ctx.budget.seconds is not None else None
        stream = executor.stream(est.trial_fn, journal, progress=ctx._on_trial, stop=stop)
        inflight: dict[int, Job] = {}
        keys: dict[int, str] = {}  # job -> trial key
        submitted: set[int] = set()
        finish: dict[int, float] = {}  # simulated completion time (fidelity units)
        clock, self.spent, self.cost_done, replayed, issuing = 0.0, 0.0, 0.0, 0, True

        def spec_of(job: Job) -> dict[str, Any]:
            return est.trial_spec(ctx.space, job.arch, seed=ctx.seed, fidelity=job.fidelity)

        def submit(job: Job) -> None:
            keys[job.job] = stream.submit(spec_of(job))
            submitted.add(job.job)

        with progress.bar(f"{self.name}: trials", None) as bar:
            ctx.trial_bar, ctx.trials_seen = bar, 0
            try:
                while True:
                    while issuing and len(inflight) < slots:
                        if ctx.out_of_time():
                            self.stopped_by_time, issuing = True, False
                            break
                        job = sched.ask()
                        if job is None:
                            break
                        cost = job.fidelity / top
                        if budget is not None and self.spent + cost > budget + 1e-9:
                            issuing = False  # this and every later trial would overspend
                            break
                        self.spent += cost
                        inflight[job.job] = job
                        finish[job.job] = clock + job.fidelity
                        if replayed >= len(log):
                            submit(job)
                    if not inflight:
                        break
                    if replayed < len(log):  # resume: the recorded decision, nothing runs
                        rec = log[replayed]
                        job = inflight.pop(rec["job"], None)
                        if job is None or rec["trial_key"] != _key(spec_of(job)):
                            raise ConfigError(f"the rung log in {journal.path} does not match this search (decision "
                                              f"{replayed}: job {rec['job']}); it was written by another config or seed")
                        score, clock = rec["score"], float(rec["clock"])
                        replayed += 1
                        if replayed == len(log):
                            for j in sorted(inflight):
                                submit(inflight[j])
                    else:
                        if simulated:
                            jid = min(inflight, key=lambda j: (finish[j], j))
                            _, result = stream.wait(keys[jid])
                        else:
                            key, result = stream.wait()
                            jid = next(j for j in inflight if keys.get(j) == key)
                        if result is None:  # the deadline passed before it started: it stays pending
                            self.stopped_by_time = True
                            break
                        job = inflight.pop(jid)
                        score = _score(result)
                        clock = max(clock, finish[jid]) if simulated else finish[jid]
                        record = {"seq": len(self.history), "job": job.job, "config": job.config, "rung": job.rung,
                                  "fidelity": job.fidelity, "bracket": job.bracket, "trial_key": keys[jid],
                                  "score": score, "clock": clock}
                        ctx.log(event="trial", **record, arch=job.arch,
                                **{k: v for k, v in result.items() if k not in record and k != "arch"})
                        journal.record_rung(record)
                        ctx.checkpoint({"kind": f"multi-fidelity:{self.name}", "decisions": record["seq"] + 1})
                    sched.tell(job, score)
                    self._record_job(job, score)
                    self._append_history(ctx)  # history.jsonl: one line per decision, as for every multi-trial search
            finally:
                stream.close()
                ctx.trial_bar = None
        return self._result(ctx)

    def _keep_history_lines(self, ctx: SearchContext, decisions: int) -> int:
        """Cut ``history.jsonl`` to the records of the `decisions` the rung log holds (later lines belong to
        no recorded decision); returns how many lines it keeps. Replaying the log rebuilds the same records,
        so the lines kept are those the replay would write, and the missing ones are appended as it goes."""
        if ctx.run is None:
            return 0
        path = ctx.run.file(self.HISTORY)
        text = path.read_text() if path.exists() else ""
        lines = text.splitlines()
        cut = not text.endswith("\n") and bool(text)  # a line cut short by a kill mid-write
        keep = lines[: min(len(lines) - cut, decisions)]
        if len(keep) < len(lines) and ctx.is_main:
            atomic_write_bytes(path, "".join(line + "\n" for line in keep).encode())
        return len(keep)

    def _sampler(self, ctx: SearchContext, rng: random.Random) -> Callable[[], Arch | None]:
        space = ctx.space
        seen: set[str] = set()
        if self.hp["sampler"] == "evolution":
            self.engine = RegularizedEvolution(lambda r: space.validate(space.sample(r)),
                                               lambda a, r: space.validate(space.mutate(a, r)),
                                               population_size=self.hp["population"], sample_size=self.hp["sample_size"])

            def evolve() -> Arch | None:
                out = self.engine.ask(rng, 1)
                return out[0] if out else None

            return evolve
        self.engine = None

        def draw() -> Arch | None:  # a new uniformly sampled architecture (None: the space is used up)
            arch = sample_new(ctx, rng, seen)
            if arch is not None:
                seen.add(arch_key(arch))
            return arch

        return draw

    def _record_job(self, job: Job, score: float | None) -> None:
        if self.engine is not None and job.config not in self._told:  # evolution learns each config's first score
            self.engine.tell([job.arch], [score])
        self._told.add(job.config)
        self.cost_done += job.fidelity / self.levels[-1]
        best = self.history[-1] if self.history else None
        better = score is not None and (best is None or best["best_score"] is None
                                        or (job.rung, score) > (best["best_rung"], best["best_score"]))
        self.scores[arch_key(job.arch)] = score
        self.history.append({
            "trial": len(self.history) + 1, "job": job.job, "config": job.config, "rung": job.rung,
            "fidelity": job.fidelity, "bracket": job.bracket, "arch": job.arch, "score": score,
            "cost": round(self.cost_done, 9),
            "best_score": score if better else (best["best_score"] if best else None),
            "best_rung": job.rung if better else (best["best_rung"] if best else None),
            "best_arch": job.arch if better else (best["best_arch"] if best else None),
        })

    def extra_metrics(self) -> dict[str, Any]:
        rungs = []
        reached: list[set[int]] = [set() for _ in self.levels]
        for h in self.history:
            reached[h["rung"]].add(h["config"])
        for k, fidelity in enumerate(self.levels):
            on = [h for h in self.history if h["rung"] == k]
            ok = [h["score"] for h in on if h["score"] is not None]
            rungs.append({"rung": k, "fidelity": fidelity, "trials": len(on), "failed": len(on) - len(ok),
                          "promoted": len(reached[k] & reached[k + 1]) if k + 1 < len(self.levels) else None,
                          "best_score": max(ok) if ok else None})
        best = self.history[-1] if self.history else {}
        warnings = []
        top = len(self.levels) - 1
        if best.get("best_rung") is not None and best["best_rung"] < top:
            why = (f"all {rungs[top]['trials']} trial(s) on the top rung failed" if rungs[top]["trials"] else
                   "the budget ended before any configuration reached the top rung; raise --trials"
                   + (" or --seconds" if self.stopped_by_time else ""))
            warnings.append(f"{self.name}: the recommended architecture was scored only at rung {best['best_rung']} "
                            f"({self.levels[best['best_rung']]} {self.unit}), never at the top fidelity "
                            f"({self.levels[top]} {self.unit}): {why}")
        return {**({"warnings": warnings} if warnings else {}), "scheduler": self.scheduler_name, "eta": self.hp["eta"], "fidelity_unit": self.unit,
                "rung_levels": self.levels, "rungs": rungs, "budget_used": round(self.cost_done, 6),
                "budget_issued": round(self.spent, 6), "configs": len({h["config"] for h in self.history}),
                "best_rung": best.get("best_rung"), **({"rung_signals": self.signals} if self.signals else {})}


def _key(spec: dict[str, Any]) -> str:
    from ..runs.journal import spec_key

    return spec_key(spec)



__all__ = ["Job", "Scheduler", "SyncHalving", "ASHAScheduler", "rung_levels", "MultiFidelityStrategy", "COMMON"]
