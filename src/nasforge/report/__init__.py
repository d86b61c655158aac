"""Reports of finished searches: figures written next to a run's results (matplotlib, Agg backend)."""
from .plots import plot_alpha_trajectories, plot_loss_history, plot_policies, plot_policy_concentration

__all__ = ["plot_alpha_trajectories", "plot_loss_history", "plot_policies", "plot_policy_concentration"]
