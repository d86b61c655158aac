"""The search machinery every method shares (`nasforge.strategies` holds one module per method on it):

- base.py: Strategy, SearchContext (budget, data, estimator, executor, run), SearchResult, Budget
- oneshot.py: the supernet engine (OneShotStrategy): optimiser recipes, phases, steps, precision, data
  parallelism, checkpoints and exact resume
- paths.py: sampled-path training (PathSamplingStrategy: MANAS, MANAS-LS, random-ws) and path scoring
- bandits.py: the agent populations of sampled-path methods (numpy)
- multitrial.py: the multi-trial loop (MultiTrialStrategy: propose, evaluate, observe, checkpoint)
- evolution.py: the ask/tell regularised-evolution engine
- nsga2.py: NSGA-II on the same ask/tell interface (non-dominated sorting, crowding distance)
- multifidelity.py: rung ladders, the successive-halving / Hyperband / ASHA schedulers and their driver
  (MultiFidelityStrategy: trial streams, the journal's rung log, replay on resume)
"""
from .base import Budget, SearchContext, SearchResult, Strategy

__all__ = ["Budget", "SearchContext", "SearchResult", "Strategy"]
