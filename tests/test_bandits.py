"""MANAS bandit agents (spec §4.3, claim M0): Zipf law, EXP3 credit, ridge credit, checkpoints, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nasforge.errors import ConfigError, TrainingDiverged, UserError
from nasforge.engine.bandits import (
    AdditiveProblem,
    AgentPopulation,
    Exp3Agents,
    GaussianSqueeze,
    LeastSquaresAgents,
    UniformAgents,
    default_eta,
    make_agents,
    simulate,
    zipf_probabilities,
)


def test_zipf_probabilities_match_spec_for_k8():
    p = zipf_probabilities(8)
    h8 = sum(1.0 / r for r in range(1, 9))
    assert h8 == pytest.approx(2.718, abs=1e-3)
    assert p.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(p, [1.0 / (r * h8) for r in range(1, 9)], rtol=1e-14)
    # The rounded values printed in the spec.
    np.testing.assert_allclose(p, [0.368, 0.184, 0.123, 0.092, 0.074, 0.061, 0.053, 0.046], atol=6e-4)


def test_default_eta_formula():
    assert default_eta(8, 3000) == pytest.approx(math.sqrt(2 * math.log(8) / (3000 * 8)))
    assert default_eta(2, 1) == pytest.approx(math.sqrt(math.log(2)))


def test_exp3_first_update_credit_is_loss_over_uniform_probability():
    agents = Exp3Agents(3, 4, eta=0.1)
    agents.update(np.array([0, 2, 3]), 0.5)
    expected = np.zeros((3, 4))
    expected[[0, 1, 2], [0, 2, 3]] = 0.5 / 0.25  # exactly 2.0
    np.testing.assert_array_equal(agents.credits(), expected)


def test_exp3_importance_weight_uses_pre_update_probability():
    agents = Exp3Agents(2, 4, eta=0.7, gamma=0.1)
    agents.update(np.array([1, 3]), 0.9)  # make the policies non-uniform first
    p_pre = agents.probabilities()
    b_pre = agents.credits()
    actions, loss = np.array([1, 0]), 0.6
    agents.update(actions, loss)
    rows = np.arange(2)
    np.testing.assert_array_equal(agents.credits()[rows, actions], b_pre[rows, actions] + loss / p_pre[rows, actions])
    # The post-update probability would have given a different credit, so the test can tell them apart.
    p_post = agents.probabilities()
    assert not np.allclose(b_pre[rows, actions] + loss / p_post[rows, actions], agents.credits()[rows, actions])
    # Unsampled arms are untouched.
    mask = np.ones((2, 4), dtype=bool)
    mask[rows, actions] = False
    np.testing.assert_array_equal(agents.credits()[mask], b_pre[mask])


def test_exp3_sweep_over_fixed_loss_table_favours_lowest_loss_arm():
    table = np.array([0.2, 0.9, 0.5, 0.7])
    agents = Exp3Agents(1, 4, eta=0.5)
    for arm in range(4):
        agents.update(np.array([arm]), table[arm])
    p = agents.probabilities()[0]
    assert p.argmax() == 0 and p[0] > 0.25


def test_exp3_learning_on_fixed_loss_table_raises_best_arm_probability():
    table = np.array([[0.1, 0.6, 0.8, 0.5], [0.7, 0.9, 0.2, 0.6], [0.5, 0.5, 0.5, 0.0]])
    agents = Exp3Agents(3, 4, eta=0.05)
    rng = np.random.default_rng(0)
    best = table.argmin(axis=1)
    start = agents.probabilities()[np.arange(3), best]
    for _ in range(400):
        a = agents.sample(rng)
        agents.update(a, table[np.arange(3), a].mean())
    end = agents.probabilities()[np.arange(3), best]
    assert np.all(end > start + 0.3)
    np.testing.assert_array_equal(agents.best(), best)
    assert np.all(agents.entropy() < math.log(4) - 0.3)


def test_exp3_clips_losses_outside_unit_interval_with_one_warning():
    agents = Exp3Agents(1, 2, eta=0.1)
    with pytest.warns(UserWarning, match=r"losses in \[0, 1\]"):
        agents.update(np.array([0]), 2.5)
    agents.update(np.array([1]), -1.0)
    assert agents.n_clipped == 2
    np.testing.assert_array_equal(agents.credits(), [[2.0, 0.0]])


def _planted(n: int, k: int, seed: int) -> AdditiveProblem:
    return AdditiveProblem.random(n, k, np.random.default_rng(seed), noise_std=0.0)


def test_ls_recovers_planted_beta_up_to_per_agent_offsets():
    n, k = 5, 4
    problem = _planted(n, k, seed=1)
    agents = LeastSquaresAgents(n, k, ridge=1e-9, warmup=10**9)  # uniform sampling throughout
    simulate(agents, problem, 200, np.random.default_rng(2))
    credits = agents.credits()
    # Identifiable: differences within an agent ...
    np.testing.assert_allclose(credits - credits[:, :1], problem.beta - problem.beta[:, :1], atol=1e-7)
    # ... and the loss of any architecture (the per-agent constants only sum to a fixed total).
    archs = np.random.default_rng(3).integers(0, k, size=(50, n))
    predicted = credits[np.arange(n), archs].sum(axis=1)
    np.testing.assert_allclose(predicted, problem.expected_loss(archs), atol=1e-7)
    np.testing.assert_array_equal(agents.best(), problem.best_actions())


def test_ls_incremental_solution_equals_batch_min_norm_least_squares_on_history():
    n, k = 3, 3
    agents = LeastSquaresAgents(n, k, ridge=1e-10, warmup=0)
    rng = np.random.default_rng(4)
    problem = AdditiveProblem.random(n, k, rng, noise_std=0.05)
    simulate(agents, problem, 60, rng)
    actions, losses = agents.history()
    assert actions.shape == (60, n) and losses.shape == (60,)
    design = np.zeros((60, n * k))
    design[np.arange(60)[:, None], np.arange(n) * k + actions] = 1.0
    beta_batch = np.linalg.lstsq(design, losses, rcond=None)[0]  # minimum-norm solution
    # A vanishing ridge selects the minimum-norm solution; the split of the constant between agents
    # is ill-conditioned (the ridge is all that fixes it), so it agrees less tightly than the fit itself.
    np.testing.assert_allclose(agents.credits().ravel(), beta_batch, atol=1e-4)
    np.testing.assert_allclose(design @ agents.credits().ravel(), design @ beta_batch, atol=1e-9)


def test_ls_policy_is_zipf_by_ascending_credit_and_ties_share_mass():
    agents = LeastSquaresAgents(1, 4, warmup=0)
    np.testing.assert_allclose(agents.probabilities(), 0.25)  # all credits tied at 0
    agents.update(np.array([0]), 1.0)  # arm 0 now has positive credit, the unseen arms stay at exactly 0
    z = zipf_probabilities(4)
    np.testing.assert_allclose(agents.probabilities()[0], [z[3], z[:3].mean(), z[:3].mean(), z[:3].mean()])

    agents = LeastSquaresAgents(2, 4, warmup=0)
    state = agents.state_dict()
    state["arrays"]["beta"] = np.array([0.3, 0.1, 0.4, 0.2, 0.0, -1.0, 5.0, 2.0])
    agents.load_state_dict(state)
    np.testing.assert_allclose(agents.probabilities(), [z[[2, 0, 3, 1]], z[[1, 0, 3, 2]]])
    np.testing.assert_array_equal(agents.best(), [1, 1])


def test_ls_warmup_is_uniform_then_zipf():
    agents = LeastSquaresAgents(2, 3, warmup=2)
    assert agents.warmup == 2 and LeastSquaresAgents(2, 5).warmup == 5  # default: K rounds
    rng = np.random.default_rng(0)
    for _ in range(2):
        np.testing.assert_allclose(agents.probabilities(), 1 / 3)
        agents.update(agents.sample(rng), 0.5)
    assert sorted(agents.probabilities()[0]) != [1 / 3] * 3


def test_ls_refit_every_keeps_stale_credits_between_solves():
    agents = LeastSquaresAgents(2, 2, refit_every=3, warmup=0)
    agents.update(np.array([0, 1]), 0.4)
    agents.update(np.array([1, 1]), 0.8)
    np.testing.assert_array_equal(agents.credits(), 0.0)
    agents.update(np.array([0, 0]), 0.2)
    assert np.any(agents.credits() != 0.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Exp3Agents(4, 5, eta=0.3, gamma=0.05),
        lambda: Exp3Agents(4, 5, eta=0.3, baseline=True),
        lambda: LeastSquaresAgents(4, 5, refit_every=3, warmup=4),
        lambda: UniformAgents(4, 5),
    ],
    ids=["manas", "manas-baseline", "manas-ls", "uniform"],
)
def test_state_dict_round_trip_gives_identical_future(make):
    problem = AdditiveProblem.random(4, 5, np.random.default_rng(7))
    agents, rng = make(), np.random.default_rng(8)
    simulate(agents, problem, 31, rng)
    state, rng_state = agents.state_dict(), rng.bit_generator.state
    frozen = {k: v.copy() for k, v in state["arrays"].items()}

    def future(a: AgentPopulation, r: np.random.Generator) -> tuple[list, np.ndarray]:
        acts = []
        for _ in range(20):
            x = a.sample(r)
            a.update(x, problem.loss(x, r))
            acts.append(x)
        return acts, a.probabilities()

    first = future(agents, rng)
    # The saved state is a copy: continuing did not change it.
    for name, arr in frozen.items():
        np.testing.assert_array_equal(state["arrays"][name], arr)

    resumed = AgentPopulation.from_state_dict(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    second = future(resumed, rng2)
    np.testing.assert_array_equal(np.array(first[0]), np.array(second[0]))
    np.testing.assert_array_equal(first[1], second[1])
    for name, arr in agents.state_dict()["arrays"].items():
        np.testing.assert_array_equal(resumed.state_dict()["arrays"][name], arr)

    fresh = make()  # load into an already-built population, too
    fresh.load_state_dict(state)
    assert fresh.t == 31


def test_exp3_baseline_credits_loss_minus_mean_of_earlier_losses():
    agents = Exp3Agents(2, 4, eta=0.5, baseline=True)
    agents.update(np.array([0, 1]), 0.6)  # no earlier losses: the plain credit 0.6 / 0.25
    np.testing.assert_allclose(agents.credits()[[0, 1], [0, 1]], [2.4, 2.4])
    p = agents.probabilities()
    b = agents.credits()
    agents.update(np.array([2, 1]), 0.4)  # mean of earlier losses 0.6 -> credit (0.4 - 0.6) / p
    np.testing.assert_allclose(agents.credits()[[0, 1], [2, 1]], b[[0, 1], [2, 1]] - 0.2 / p[[0, 1], [2, 1]])
    # a loss equal to the running mean teaches nothing
    b = agents.credits()
    agents.update(np.array([3, 3]), 0.5)
    np.testing.assert_allclose(agents.credits(), b)


def test_exp3_baseline_recovers_more_agents_on_the_m2_problem():
    """The variance reduction: on the spec's additive problem (14 agents, 8 ops, T=3000) at the standard
    eta, centering the loss recovers clearly more best ops than the paper's EXP3 (same problems, same draws)."""
    recovered = {False: [], True: []}
    for seed in (0, 1):
        problem = AdditiveProblem.random(14, 8, np.random.default_rng(seed))
        for baseline in (False, True):
            agents = Exp3Agents(14, 8, eta=default_eta(8, 3000), baseline=baseline)
            simulate(agents, problem, 3000, np.random.default_rng(100 + seed))
            recovered[baseline].append(np.mean(agents.best() == problem.best_actions()))
    assert np.mean(recovered[True]) >= np.mean(recovered[False]) + 0.15


def test_seeded_generator_makes_runs_deterministic():
    def run(seed: int) -> np.ndarray:
        problem = AdditiveProblem.random(6, 8, np.random.default_rng(seed))
        agents = make_agents("manas-ls", 6, 8)
        return simulate(agents, problem, 40, np.random.default_rng(seed))

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_sample_follows_probabilities_and_skips_zero_probability_arms():
    agents = Exp3Agents(2, 3, eta=1.0)
    agents.cum_loss[:] = [[0.0, 1.0, 1e6], [2.0, 0.0, 0.5]]
    p = agents.probabilities()
    assert p[0, 2] == 0.0
    draws = np.stack([agents.sample(np.random.default_rng(s)) for s in range(3000)])
    assert not np.any(draws[:, 0] == 2)
    for i in range(2):
        freq = np.bincount(draws[:, i], minlength=3) / len(draws)
        np.testing.assert_allclose(freq, p[i], atol=0.03)


def test_uniform_agents_and_entropy():
    agents = UniformAgents(3, 8)
    np.testing.assert_allclose(agents.entropy(), math.log(8))
    agents.update(np.array([1, 2, 3]), 0.3)
    assert agents.t == 1
    np.testing.assert_allclose(agents.probabilities(), 1 / 8)


def test_ls_learns_synthetic_additive_problem_better_than_uniform():
    problem = AdditiveProblem.random(4, 4, np.random.default_rng(11))
    ls = LeastSquaresAgents(4, 4)
    regret_ls = simulate(ls, problem, 400, np.random.default_rng(12))
    regret_uni = simulate(UniformAgents(4, 4), problem, 400, np.random.default_rng(12))
    np.testing.assert_array_equal(ls.best(), problem.best_actions())
    assert regret_ls[200:].mean() < 0.7 * regret_uni[200:].mean()


def test_synthetic_problems():
    problem = _planted(3, 4, seed=0)
    archs = np.array([[0, 1, 2], [3, 3, 0]])
    np.testing.assert_allclose(problem.expected_loss(archs), [problem.expected_loss(a) for a in archs])
    assert problem.expected_loss(problem.best_actions()) == pytest.approx(problem.optimal_loss)

    squeeze = GaussianSqueeze(14, 8)
    all_low = np.zeros(14, dtype=int)
    assert squeeze.expected_loss(all_low) == pytest.approx(1.0)  # x = 0 gives G = 0
    # The optimum is reachable: some joint action has loss exactly 0, and none goes below.
    sums = np.arange(14 * 7 + 1)
    losses = np.array([squeeze.expected_loss(np.array([s] + [0] * 13)) for s in range(8)])
    assert losses.min() >= 0.0
    x = sums / 7
    best_sum = sums[np.argmax(x * np.exp(-((x - 3.5) ** 2) / 3.5**2))]
    arch = np.minimum(7, np.maximum(0, best_sum - 7 * np.arange(14)))
    assert arch.sum() == best_sum and squeeze.expected_loss(arch) == pytest.approx(0.0, abs=1e-12)
    random_loss = squeeze.expected_loss(np.random.default_rng(0).integers(0, 8, size=(2000, 14))).mean()
    assert 0.3 < random_loss < 0.5


@pytest.mark.parametrize(
    "build, error, pattern",
    [
        (lambda: zipf_probabilities(1), ConfigError, "arms"),
        (lambda: UniformAgents(3, 1), ConfigError, ">= 2"),
        (lambda: UniformAgents(0, 4), ConfigError, "agents"),
        (lambda: Exp3Agents(2, 4, eta=0.0), ConfigError, "eta"),
        (lambda: Exp3Agents(2, 4, eta=-1.0), ConfigError, "eta"),
        (lambda: Exp3Agents(2, 4, eta=float("nan")), ConfigError, "eta"),
        (lambda: Exp3Agents(2, 4, eta=0.1, gamma=1.5), ConfigError, "gamma"),
        (lambda: LeastSquaresAgents(2, 4, ridge=0.0), ConfigError, "rank-deficient"),
        (lambda: LeastSquaresAgents(2, 4, refit_every=0), ConfigError, "refit_every"),
        (lambda: LeastSquaresAgents(2, 4, warmup=-1), ConfigError, "warmup"),
        (lambda: default_eta(8, 0), ConfigError, "horizon"),
        (lambda: make_agents("manas-xl", 2, 4), ConfigError, "choose from: manas, manas-ls, uniform"),
        (lambda: make_agents("manas", 2, 4, eta=0.1, ridge=1.0), ConfigError, "bad options"),
        (lambda: Exp3Agents(2, 4, eta=0.1).update(np.array([0, 1]), float("nan")), TrainingDiverged, "non-finite"),
        (lambda: LeastSquaresAgents(2, 4).update(np.array([0, 1]), float("inf")), TrainingDiverged, "non-finite"),
        (lambda: UniformAgents(2, 4).update(np.array([0, 1, 2]), 0.5), ValueError, r"shape \(2,\)"),
        (lambda: UniformAgents(2, 4).update(np.array([0, 4]), 0.5), ValueError, r"\[0, 3\]"),
        (lambda: UniformAgents(2, 4).update(np.array([0.0, 1.0]), 0.5), ValueError, "integer"),
    ],
)
def test_bad_arguments_raise_clear_errors(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()
    if error is not ValueError:
        assert issubclass(error, UserError)


def test_loading_a_mismatched_checkpoint_names_both_configurations():
    state = Exp3Agents(3, 8, eta=0.1).state_dict()
    with pytest.raises(ConfigError, match="manas agents 3x8.*this run has manas agents 4x8"):
        Exp3Agents(4, 8, eta=0.1).load_state_dict(state)
    with pytest.raises(ConfigError, match="manas-ls"):
        LeastSquaresAgents(3, 8).load_state_dict(state)
    with pytest.raises(ConfigError, match="corrupt"):
        Exp3Agents(3, 8, eta=0.1).load_state_dict({"kind": "manas"})
