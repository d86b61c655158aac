"""The supernet interface every weight-sharing strategy talks to.

Architecture parameters are a dict ``group -> Parameter[E, K]`` (E edges, K ops): NB201 has one group
``cell``; DARTS has ``normal`` and ``reduce``; a network with unique cells has one group per cell. A *path*
is the matching dict ``group -> LongTensor[E]`` of chosen op indices. Strategies work on these dicts and
never look inside the network, so one strategy runs on every space.
"""
from __future__ import annotations

from typing import Any, ClassVar, Iterator

import torch
import torch.nn as nn

from ..spaces.base import Arch


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Row-wise entropy (nats) of a probability matrix."""
    return -(p.clamp_min(1e-12).log() * p).sum(-1)


#: derivation rules every supernet accepts (see Supernet.derive)
DERIVATION_RULES: tuple[str, ...] = ("default", "no-none", "connected")


def path_size(path: dict[str, torch.Tensor]) -> int:
    return sum(int(v.numel()) for v in path.values())


class Supernet(nn.Module):
    """Base class: subclasses create ``self.alphas`` (nn.ParameterDict) and the edges, and implement
    ``forward`` by asking :meth:`edge_weights` / :meth:`edge_index` for each edge."""

    op_names: list[str]
    #: True when the space's derivation keeps only some incoming edges per node (DARTS: the top 2), so a
    #: sampled-path strategy may derive in that pruned form (its ``top2`` option); False: one op per edge
    prunes_inputs: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.init_supernet()

    def init_supernet(self) -> None:
        """Set up the arch-parameter state; call after nn.Module.__init__ when mixing into another base."""
        self.alphas = nn.ParameterDict()
        self.temperature: float = 1.0
        self.activation: str = "softmax"  # or "sigmoid" (Single-DARTS 2025 variant: no competition between ops)
        self._path: dict[str, torch.Tensor] | None = None

    # -- parameters ---------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return ((n, p) for n, p in self.named_parameters() if id(p) not in arch)

    # -- modes --------------------------------------------------------------------------------
    def set_path(self, path: dict[str, torch.Tensor] | None) -> None:
        """Sampled mode: each edge runs exactly the op in `path` (None returns to weighted mode)."""
        if path is not None:
            for g, a in self.alphas.items():
                if g not in path or path[g].shape != a.shape[:1]:
                    raise ValueError(f"path group {g!r} must hold {a.shape[0]} op indices")
        self._path = path

    @property
    def path(self) -> dict[str, torch.Tensor] | None:
        return self._path

    def op_weights(self) -> dict[str, torch.Tensor]:
        """The op weights used in weighted mode: softmax(alpha / T) per edge (or sigmoid)."""
        if self.activation == "sigmoid":
            return {g: torch.sigmoid(a / self.temperature) for g, a in self.alphas.items()}
        return {g: torch.softmax(a / self.temperature, dim=-1) for g, a in self.alphas.items()}

    def probabilities(self) -> dict[str, torch.Tensor]:
        """Normalised op distribution per edge (for diagnostics), detached."""
        with torch.no_grad():
            return {g: torch.softmax(a / self.temperature, dim=-1).detach().clone() for g, a in self.alphas.items()}

    def edge_shapes(self) -> dict[str, tuple[int, int]]:
        return {g: (a.shape[0], a.shape[1]) for g, a in self.alphas.items()}

    def random_path(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        # a path is control data (op indices read as Python ints), so it stays on the host whatever the device
        return {g: torch.randint(0, a.shape[1], (a.shape[0],), generator=generator)  # host: path indices
                for g, a in self.alphas.items()}

    # -- results --------------------------------------------------------------------------------
    def derive(self, scores: dict[str, torch.Tensor] | None = None, rule: str = "default") -> Arch:
        """The discrete architecture from `scores` (logits per group; default: the current alphas).

        `rule` (one of DERIVATION_RULES): "default" is the space's own rule; "no-none" picks among the
        non-`none` ops only; "connected" takes the highest-scoring architecture (sum of per-edge
        log-softmax scores) whose input reaches its output through non-`none` ops. Where the space's rule
        already excludes `none` (DARTS), the three coincide."""
        raise NotImplementedError

    def path_to_arch(self, path: dict[str, torch.Tensor], top2: bool = False) -> Arch:
        """The architecture a path runs (canonical JSON of the space). ``top2`` only where `prunes_inputs`."""
        raise NotImplementedError

    def arch_to_path(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The path that runs exactly `arch` (a validated architecture); edges it leaves out get `none`."""
        raise NotImplementedError

    def sample_pruned_actions(self, rng: Any) -> list[list[int]]:
        """Where `prunes_inputs`: one random architecture of the pruned form (per group, an op index per
        edge; the unused edges `none`), drawn with the numpy Generator `rng`."""
        raise NotImplementedError(f"{type(self).__name__} derives one op per edge; it has no pruned form")

    def diagnostics(self) -> dict[str, Any]:
        probs = self.probabilities()
        return {
            "alpha_softmax": {g: p.tolist() for g, p in probs.items()},
            "edge_entropy": {g: entropy(p).tolist() for g, p in probs.items()},
        }
