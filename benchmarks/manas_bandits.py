"""MANAS claim M2: the bandit agents on synthetic problems, without any network training.

Additive problem (spec §4.6): N=14 agents, K=8 ops, L(a) = sum_i beta_i[a_i] + eps with
beta_i[k] ~ U(0, 1/N) and eps ~ N(0, 0.02^2), T=3000 rounds. For MANAS-LS, MANAS (EXP3) and uniform
random it measures
  * recovery: the fraction of agents whose greedy recommendation (`best()`) is their argmin op;
  * R_t / t: average cumulative pseudo-regret (noise-free loss of the sampled architecture minus
    the optimum), at t = 300 and t = T, from the same run.
Non-additive variant: the Gaussian squeeze (see `GaussianSqueeze`), where only regret is defined;
it reports R_t / t and the mean instantaneous regret in 10 consecutive windows (the trend).

Choices made before running, not tuned on the results:
  * EXP3 eta = default_eta(K, T) = sqrt(2 ln K / (T K)), the standard horizon-T value for losses in
    [0, 1] (0.0132 for K=8, T=3000); gamma = 0 as in the paper.
  * MANAS-LS: ridge 1e-3, refit every round, warmup K rounds (the library defaults).
  * "manas+baseline" (our variant, added after the paper's EXP3 missed the recovery target): the same
    agents with baseline=True, crediting L_t minus the mean of earlier losses; same eta.
Ablations (reported separately, never replacing the headline numbers): EXP3 eta at 0.5x..8x the
default, and MANAS-LS warmup 0 / K / N*K (the spec's suggestion).

Each seed draws one problem; all methods see the same problem and the same generator seed.
Prints one JSON object: per-seed values and medians over seeds.

    .venv/bin/python benchmarks/manas_bandits.py               # 5 seeds, ~30 s of CPU
    .venv/bin/python benchmarks/manas_bandits.py --seeds 20 --skip-ablations
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

import numpy as np

from nasforge.engine.bandits import (
    AdditiveProblem,
    AgentPopulation,
    GaussianSqueeze,
    default_eta,
    make_agents,
    simulate,
)
from nasforge.utils import to_jsonable


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    problem_seq, play_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(problem_seq), np.random.default_rng(play_seq)


def _summary(per_seed: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in per_seed.items():
        out[name] = {"per_seed": [round(float(v), 4) for v in values], "median": round(float(np.median(values)), 4), "mean": round(float(np.mean(values)), 4)}
    return out


def run_additive(factory: Callable[[], AgentPopulation], args: argparse.Namespace) -> dict[str, Any]:
    vals: dict[str, list[float]] = {k: [] for k in ("recovery_early", "recovery", "avg_regret_early", "avg_regret_final", "ratio_final_over_early")}
    for seed in range(args.seeds):
        problem_rng, play_rng = _rngs(seed)
        problem = AdditiveProblem.random(args.agents, args.arms, problem_rng, noise_std=args.noise)
        agents = factory()
        best = problem.best_actions()
        early = simulate(agents, problem, args.early, play_rng)
        vals["recovery_early"].append(float(np.mean(agents.best() == best)))
        rest = simulate(agents, problem, args.rounds - args.early, play_rng)  # same generator: one continuous run
        regret = np.concatenate([early, rest])
        vals["recovery"].append(float(np.mean(agents.best() == best)))
        r_early, r_final = regret[: args.early].mean(), regret.mean()
        vals["avg_regret_early"].append(r_early)
        vals["avg_regret_final"].append(r_final)
        vals["ratio_final_over_early"].append(r_final / r_early)
    return _summary(vals)


def run_squeeze(factory: Callable[[], AgentPopulation], args: argparse.Namespace) -> dict[str, Any]:
    vals: dict[str, list[float]] = {"avg_regret_early": [], "avg_regret_final": []}
    windows = []
    for seed in range(args.seeds):
        _, play_rng = _rngs(seed)
        problem = GaussianSqueeze(args.agents, args.arms)
        regret = simulate(factory(), problem, args.rounds, play_rng)
        vals["avg_regret_early"].append(regret[: args.early].mean())
        vals["avg_regret_final"].append(regret.mean())
        windows.append([w.mean() for w in np.array_split(regret, 10)])
    out = _summary(vals)
    out["window_regret_median"] = [round(float(v), 4) for v in np.median(np.array(windows), axis=0)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (problems), 0..seeds-1")
    parser.add_argument("--agents", type=int, default=14, help="N, agents (edges)")
    parser.add_argument("--arms", type=int, default=8, help="K, ops per edge")
    parser.add_argument("--rounds", type=int, default=3000, help="T, rounds")
    parser.add_argument("--early", type=int, default=300, help="the early checkpoint t for R_t/t and recovery")
    parser.add_argument("--noise", type=float, default=0.02, help="std of the additive problem's loss noise")
    parser.add_argument("--skip-ablations", action="store_true", help="only the headline methods")
    args = parser.parse_args()
    if not 0 < args.early < args.rounds:
        parser.error("--early must lie strictly between 0 and --rounds")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")

    n, k, t = args.agents, args.arms, args.rounds
    eta = default_eta(k, t)
    methods: dict[str, Callable[[], AgentPopulation]] = {
        "manas-ls": lambda: make_agents("manas-ls", n, k),
        "manas": lambda: make_agents("manas", n, k, eta=eta),
        "manas+baseline": lambda: make_agents("manas", n, k, eta=eta, baseline=True),
        "uniform": lambda: make_agents("uniform", n, k),
    }
    start = time.perf_counter()
    additive = {name: run_additive(f, args) for name, f in methods.items()}
    squeeze = GaussianSqueeze(n, k)
    squeeze_res = {name: run_squeeze(f, args) for name, f in methods.items()}

    med = lambda method, key: additive[method][key]["median"]  # noqa: E731
    targets = {
        "manas-ls recovery >= 0.90": {"measured": med("manas-ls", "recovery"), "met": med("manas-ls", "recovery") >= 0.90},
        "manas recovery >= 0.70": {"measured": med("manas", "recovery"), "met": med("manas", "recovery") >= 0.70},
        "manas R_T/T <= 0.5 * R_early/early": {
            "measured_ratio": med("manas", "ratio_final_over_early"),
            "met": med("manas", "ratio_final_over_early") <= 0.5,
        },
        "manas+baseline recovery >= 0.70 (our variant)": {"measured": med("manas+baseline", "recovery"),
                                                          "met": med("manas+baseline", "recovery") >= 0.70},
        "manas+baseline R_T/T <= 0.5 * R_early/early (our variant)": {
            "measured_ratio": med("manas+baseline", "ratio_final_over_early"),
            "met": med("manas+baseline", "ratio_final_over_early") <= 0.5,
        },
        "uniform recovery ~ 1/K": {"measured": med("uniform", "recovery"), "chance": round(1 / k, 4)},
        "squeeze: manas regret trends down, uniform flat": {
            "manas_first_last_window": [squeeze_res["manas"]["window_regret_median"][i] for i in (0, -1)],
            "uniform_first_last_window": [squeeze_res["uniform"]["window_regret_median"][i] for i in (0, -1)],
        },
    }

    result: dict[str, Any] = {
        "benchmark": "manas_bandits",
        "claim": "M2",
        "setup": {
            "agents": n,
            "arms": k,
            "rounds": t,
            "early": args.early,
            "seeds": args.seeds,
            "additive_noise_std": args.noise,
            "manas_eta": round(eta, 6),
            "manas_eta_rule": "sqrt(2 ln K / (T K)), gamma=0",
            "manas_ls": make_agents("manas-ls", n, k).hparams(),
            "recovery": "fraction of agents whose best() equals their argmin op, at t=early and t=T",
            "regret": "average cumulative pseudo-regret R_t/t (noise-free), at t=early and t=T",
            "squeeze": {"mu": squeeze.mu, "sigma": squeeze.sigma, "amount_of_op_k": "k/(K-1)", "loss": "1 - G(x)/G*"},
        },
        "additive": additive,
        "squeeze": squeeze_res,
        "targets": targets,
    }
    if not args.skip_ablations:
        result["ablations"] = {
            "manas_eta": {
                f"{mult}x ({mult * eta:.4g})": run_additive(lambda m=mult: make_agents("manas", n, k, eta=m * eta), args)
                for mult in (0.5, 2, 4, 8)
            },
            "manas_baseline_eta": {
                f"{mult}x ({mult * eta:.4g})": run_additive(
                    lambda m=mult: make_agents("manas", n, k, eta=m * eta, baseline=True), args)
                for mult in (0.5, 2, 4, 8)
            },
            "manas_ls_warmup": {
                str(w): run_additive(lambda w=w: make_agents("manas-ls", n, k, warmup=w), args) for w in (0, n * k)
            },
        }
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(to_jsonable(result), indent=1))


if __name__ == "__main__":
    main()
