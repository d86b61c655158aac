"""Drawing architectures: a space's figure parts (:mod:`nasforge.spaces.figure`) to graphviz and SVG.

Cells become node-edge diagrams in the style of the DARTS paper's genotype plots (inputs green, intermediate
nodes blue, output yellow, op names on the edges); layer-wise networks become a left-to-right strip of
blocks; tables stay data (the HTML template lays them out). Rendering needs graphviz's ``dot`` program
(Debian: ``apt-get install graphviz``); without it :func:`render_svg` returns None and the report shows the
DOT source instead, after one warning line (:func:`dot_missing_message`).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import Any

import graphviz

from ..spaces.figure import CellFigure, StripFigure, TableFigure

_FONT = "Helvetica"
_INPUT, _NODE, _OUTPUT, _SKIP = "#a8e6a1", "#9ecbf0", "#f7e08a", "#e0e0e0"


def dot_available() -> bool:
    """True when graphviz's `dot` executable is on PATH."""
    return shutil.which("dot") is not None


def dot_missing_message() -> str:
    return ("graphviz's 'dot' program was not found, so architectures are shown as DOT text "
            "(install it: apt-get install graphviz)")


def cell_graph(fig: CellFigure) -> graphviz.Digraph:
    """A cell as a left-to-right digraph; every edge of `fig` becomes one graphviz edge labelled with its op."""
    g = graphviz.Digraph(name=fig.title, format="svg")
    g.attr(rankdir="LR", bgcolor="white", fontname=_FONT, label=fig.title, labelloc="t", fontsize="16")
    g.attr("node", style="filled,rounded", shape="box", fontname=_FONT, fontsize="13", penwidth="1.5",
           height="0.45")
    g.attr("edge", fontname=_FONT, fontsize="11", penwidth="1.2")
    seen: list[str] = []
    for src, dst, _ in fig.edges:
        for n in (src, dst):
            if n not in seen:
                seen.append(n)
    for n in fig.inputs:
        if n not in seen:
            seen.insert(0, n)
    if fig.output is not None and fig.output not in seen:
        seen.append(fig.output)
    for n in seen:
        colour = _INPUT if n in fig.inputs else _OUTPUT if n == fig.output else _NODE
        g.node(n, fig.labels.get(n, n), fillcolor=colour)
    with g.subgraph() as s:  # inputs share the first rank
        s.attr(rank="same")
        for n in fig.inputs:
            s.node(n)
    for src, dst, op in fig.edges:
        if op:
            g.edge(src, dst, label=op, color="black" if op not in ("skip_connect", "identity") else "grey40")
        else:
            g.edge(src, dst, style="dashed", color="grey50")
    return g


def strip_graph(fig: StripFigure, per_row: int = 8) -> graphviz.Digraph:
    """A strip of blocks: input -> layer 1 -> ... -> output, each box naming the chosen block and its detail;
    long strips wrap into rows of `per_row` layers (read left to right, top to bottom)."""
    g = graphviz.Digraph(name=fig.title, format="svg")
    g.attr(rankdir="TB", bgcolor="white", fontname=_FONT, label=fig.title, labelloc="t", fontsize="16",
           nodesep="0.25", ranksep="0.35")
    g.attr("node", shape="box", style="filled,rounded", fontname=_FONT, fontsize="12")
    names = ["input"] + [f"L{i + 1}" for i in range(len(fig.blocks))] + ["output"]
    g.node("input", "input", fillcolor=_INPUT)
    for i, (label, detail) in enumerate(fig.blocks):
        skip = label.lower() in ("skip", "identity", "none")
        g.node(f"L{i + 1}", f"{i + 1}: {label}" + (f"\n{detail}" if detail else ""), fillcolor=_SKIP if skip else _NODE)
    g.node("output", "output", fillcolor=_OUTPUT)
    for r in range(0, len(names), per_row):
        with g.subgraph() as row:
            row.attr(rank="same")
            for n in names[r: r + per_row]:
                row.node(n)
    rows = [names[r: r + per_row] for r in range(0, len(names), per_row)]
    for row, nxt in zip(rows, rows[1:] + [None]):
        for a, b in zip(row, row[1:]):
            g.edge(a, b)
        if nxt:  # wrap: the row's last block feeds the next row's first; row starts stay in one column
            g.edge(row[-1], nxt[0], constraint="false")
            g.edge(row[0], nxt[0], style="invis", weight="10")
    return g


@dataclass
class DrawnPart:
    """One drawn part for the page: ``svg`` (markup, or None without `dot`), ``source`` (DOT text), or for a
    table ``columns``/``rows``."""

    title: str
    kind: str  # "graph" | "table"
    svg: str | None = None
    source: str | None = None
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None


def graph_of(part: CellFigure | StripFigure) -> graphviz.Digraph:
    if isinstance(part, CellFigure):
        return cell_graph(part)
    return strip_graph(part)


def render_svg(g: graphviz.Digraph) -> str | None:
    """SVG markup of `g` (XML prologue stripped), or None when `dot` is missing."""
    if not dot_available():
        return None
    try:
        svg = g.pipe(format="svg").decode()
    except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
        return None  # the page then shows the DOT source
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    # inline SVG in HTML needs no namespace declarations (the HTML parser assigns them); dropping them and
    # graphviz's comments keeps the page free of any URL
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S)


def draw_parts(parts: list) -> list[DrawnPart]:
    """Draw a space's figure parts (tables are passed through as rows)."""
    out: list[DrawnPart] = []
    for part in parts:
        if isinstance(part, TableFigure):
            out.append(DrawnPart(part.title, "table", columns=list(part.columns), rows=[list(r) for r in part.rows]))
        elif isinstance(part, (CellFigure, StripFigure)):
            g = graph_of(part)
            out.append(DrawnPart(part.title, "graph", svg=render_svg(g), source=g.source))
        else:
            raise TypeError(f"unknown figure part {type(part).__name__}; use nasforge.spaces.figure's classes")
    return out
