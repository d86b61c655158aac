"""How a space describes an architecture for drawing (``SearchSpace.figure``), as plain data.

A space returns a list of parts; ``nasforge report`` draws them (graphviz for cells and strips, an HTML
table for tables). Spaces never import a drawing library: this module holds data classes only.

- :class:`CellFigure`: a cell as a node-edge diagram (NB201, DARTS, PNAS, BATS cells). Nodes are ids
  (strings); ``inputs`` are the cell's inputs, ``output`` its output node, every other node an
  intermediate one. An edge carries the op it applies as its label; an edge with an empty label is a
  plain connection (e.g. the concatenation into a DARTS cell's output).
- :class:`StripFigure`: a layer-wise network as a strip of blocks, one per searchable layer (NAS-Bench-Macro,
  FBNet/mobile spaces).
- :class:`TableFigure`: a table of per-block choices (e.g. a ViT subnet: one row per block slot).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass
class CellFigure:
    """One cell. ``edges`` are ``(source id, target id, op label)``; ``labels`` maps node ids to display
    text (default: the id itself)."""

    title: str
    inputs: list[str]
    edges: list[tuple[str, str, str]]
    output: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class StripFigure:
    """Layers in order, each ``(label, detail)``: the label names the chosen block (e.g. ``MB6 k5``), the
    detail what is fixed about the layer (stride, width); skipped layers may be labelled ``skip``."""

    title: str
    blocks: list[tuple[str, str]]


@dataclass
class TableFigure:
    """Rows of per-block choices under named columns."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


ArchFigure = list[Union[CellFigure, StripFigure, TableFigure]]
