"""`nasforge report` and `nasforge compare` on real (tiny) runs of every family, checked as HTML, as graph
source, as numbers, and in a real headless browser."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest

import nasforge
from nasforge.cli import main
from nasforge.report import browser
from nasforge.report.compare import compare_runs, mean_std, pm
from nasforge.report.draw import cell_graph, draw_parts
from nasforge.report.page import fmt, pareto_points, write_report
from nasforge.spaces.darts import DartsSpace
from nasforge.spaces.figure import CellFigure, StripFigure, TableFigure
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.pnas import PNASNET5, PNASSpace


TABLES = Path(os.environ.get("NASFORGE_TEST_TABLES") or
              (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmarks").resolve())
TINY = {"dataset": "synthetic", "subset": 64, "space_options": {"C": 4, "N": 1}, "batch_size": 32, "threads": 1}
HAVE_TABLES = (TABLES / "nb201").is_dir()


# ---------------------------------------------------------------------------------------------------
# real runs, made once per module
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out: dict[str, Path] = {}
    tables = {"tables": str(TABLES)} if HAVE_TABLES else {}
    out["oneshot"] = Path(nasforge.search(
        {**TINY, **tables, "method": "single-darts", "budget": {"epochs": 2}, "hparams": {"hessian_every": 2, "eval_batches": 1},
         "retrain": {"epochs": 1, "batch_size": 32}, "retrain_subset": 64, "test_subset": 32},
        run_root=root, run_name="oneshot")["run_dir"])
    out["multitrial"] = Path(nasforge.search(
        {**{k: v for k, v in TINY.items() if k != "batch_size"},  # a multi-trial search has no supernet batch
         "method": "random", "estimator": "scratch", "budget": {"trials": 2},
         "estimator_options": {"train": {"epochs": 1, "batch_size": 32}}}, run_root=root, run_name="multitrial")["run_dir"])
    out["train"] = Path(nasforge.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32,
                                        "threads": 1, "train": {"epochs": 2, "batch_size": 32}},
                                       run_root=root, run_name="train")["run_dir"])
    if HAVE_TABLES:
        for seed in (0, 1, 2):
            out[f"query{seed}"] = Path(nasforge.search(
                {"method": "evolution", "estimator": "table", "tables": str(TABLES), "budget": {"trials": 20},
                 "seed": seed}, run_root=root, run_name=f"query{seed}")["run_dir"])
    return out


@pytest.fixture(scope="module")
def oneshot_page(runs) -> dict:
    """The one-shot run's report, written once (the richest page: most figures)."""
    return nasforge.report(runs["oneshot"])


class _Checker(HTMLParser):
    """Collects tags, and fails on unbalanced non-void elements (the page must parse cleanly)."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "path", "polygon", "ellipse", "polyline", "circle", "rect",
            "line"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def check_page(path: Path) -> tuple[str, _Checker]:
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    p = _Checker()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    # self-contained: no URL of any scheme, no external script/style/link, every image embedded
    assert not re.search(r"(?i)\b[a-z][a-z0-9+.-]*://", text), re.search(r"(?i)\b[a-z][a-z0-9+.-]*://.{0,60}", text)
    assert not any(t in ("script", "link", "iframe", "object", "embed") for t, _ in p.tags)
    for tag, attrs in p.tags:
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
        if "href" in attrs:
            assert attrs["href"].startswith("#")
    return text, p


def sections(p: _Checker) -> set[str]:
    return {a["id"] for t, a in p.tags if t == "section"}


# ---------------------------------------------------------------------------------------------------
# one report per family
# ---------------------------------------------------------------------------------------------------
def test_report_one_shot_search(runs, oneshot_page):
    res = oneshot_page
    assert Path(res["report"]) == runs["oneshot"] / "report.html" and res["drawn"]
    text, p = check_page(runs["oneshot"] / "report.html")
    assert {"overview", "architecture", "curves", "oneshot", "retrain", "cost", "config"} <= sections(p)
    arch = json.loads((runs["oneshot"] / "result.json").read_text())["arch"]
    assert arch in text and "<svg" in text
    assert json.loads((runs["oneshot"] / "metrics.jsonl").read_text().splitlines()[0])["op_names"][1] == "skip_connect"
    if HAVE_TABLES:
        assert "table" in sections(p)


def test_report_multi_trial_search_with_training(runs):
    res = nasforge.report(runs["multitrial"], tmp := runs["multitrial"].parent / "mt.html")
    text, p = check_page(tmp)
    assert res["report"] == str(tmp)
    assert {"architecture", "trials", "cost"} <= sections(p)
    assert "best 2 of 2 trials" in text


@pytest.mark.skipif(not HAVE_TABLES, reason="benchmark tables not found")
def test_report_query_mode_search(runs):
    nasforge.report(runs["query0"])
    text, p = check_page(runs["query0"] / "report.html")
    assert {"trials", "table", "architecture"} <= sections(p)
    record = json.loads((runs["query0"] / "result.json").read_text())["table"]
    assert f"{record['cifar10_test_200']:.4g}" in text


def test_report_train_run(runs):
    nasforge.report(runs["train"])
    text, p = check_page(runs["train"] / "report.html")
    assert {"overview", "curves", "retrain", "cost"} <= sections(p)
    assert "fixed model &#39;baseline&#39;" in text or "fixed model 'baseline'" in text


def test_report_of_a_run_in_progress(runs, tmp_path):
    run = tmp_path / "partial"
    shutil.copytree(runs["oneshot"], run, ignore=shutil.ignore_patterns("result.json", "search.json", "arch.json",
                                                                        "retrain", "report.html"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # second line half-written
    res = write_report(run)
    text, p = check_page(Path(res["report"]))
    assert "in progress" in res["status"] and "1 epoch(s)" in res["status"]
    assert "derived after epoch 1 (search in progress)" in text
    assert json.loads(lines[0])["arch"] in text

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(runs["oneshot"] / "config.json", fresh / "config.json")
    text, p = check_page(Path(write_report(fresh)["report"]))
    assert "Nothing logged yet" in text and "config" in sections(p)


def test_report_without_graphviz_binary_shows_dot_source(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on PATH
    out = tmp_path / "r.html"
    try:
        main(["report", str(runs["multitrial"]), "--out", str(out)])
    except SystemExit as e:
        assert e.code in (0, None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "graphviz's 'dot' program was not found" in err and "apt-get install graphviz" in err
    text, _ = check_page(out)
    assert "<svg" not in text and "DOT source" in text and "digraph" in text


# ---------------------------------------------------------------------------------------------------
# drawings: check the graph source, not pixels
# ---------------------------------------------------------------------------------------------------
EDGE = re.compile(r"^\s*(\S+) -> (\S+) \[label=(\S+)", re.M)


def test_nb201_cell_has_exactly_the_expected_edges_and_labels():
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    (part,) = NB201Space().figure(arch)
    source = cell_graph(part).source
    assert set(EDGE.findall(source)) == {("n0", "n1", "nor_conv_3x3"), ("n1", "n2", "skip_connect"),
                                         ("n0", "n3", "avg_pool_3x3"), ("n1", "n3", "nor_conv_1x1")}
    assert len(re.findall(r" -> ", source)) == 4  # the two `none` edges are not drawn
    labels = dict(re.findall(r"^\s*(n\d) \[label=(\w+)", source, re.M))
    assert labels == {"n0": "in", "n1": "1", "n2": "2", "n3": "out"}


def test_darts_pnas_macro_figures():
    genotype = {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
                           ["skip_connect", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 2]],
                "normal_concat": [2, 3, 4, 5],
                "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                           ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
                "reduce_concat": [2, 3, 4, 5]}  # DARTS V2
    normal, reduce = DartsSpace().figure(genotype)
    assert (normal.title, reduce.title) == ("normal", "reduce")
    op_edges = [e for e in normal.edges if e[2]]
    assert len(op_edges) == 8 and ("c_{k-2}", "3", "sep_conv_3x3") in op_edges and ("0", "3", "skip_connect") in op_edges
    assert sorted(e[0] for e in normal.edges if not e[2]) == ["0", "1", "2", "3"]
    src = cell_graph(reduce).source
    assert src.count("label=max_pool_3x3") == 5 and src.count("style=dashed") == 4

    (cell,) = PNASSpace().figure(PNASNET5)
    assert len([e for e in cell.edges if e[2]]) == 10
    assert ("b3", "b4", "sep_conv_3x3") in cell.edges  # block 4 reads block 3 (input 4)
    assert {e[0] for e in cell.edges if not e[2]} == {"b1", "b2", "b4", "b5"}  # unused blocks are concatenated

    (strip,) = MacroSpace().figure("01200121")
    assert [b[0] for b in strip.blocks] == ["identity", "mb3_k3", "mb6_k5", "identity", "identity", "mb3_k3",
                                            "mb6_k5", "mb3_k3"]
    assert strip.blocks[0][1] == "stride 2, 64 ch"
    drawn = draw_parts([strip, TableFigure("blocks", ["slot", "heads"], [[1, 4], [2, "identity"]])])
    src = drawn[0].source
    assert src.count(" -> ") - src.count("style=invis") == 9 and drawn[1].rows == [[1, 4], [2, "identity"]]


def test_layerwise_spaces_are_strips_of_blocks():
    import random

    from nasforge.spaces.fbnet import FBNetSpace

    space = FBNetSpace()
    arch = space.sample(random.Random(0))
    (strip,) = space.figure(arch)
    assert [b[0] for b in strip.blocks] == space.validate(arch) and len(strip.blocks) == 22
    src = draw_parts([strip])[0].source
    chain = [tuple(line.split()[:3:2]) for line in src.splitlines() if " -> " in line and "invis" not in line]
    names = ["input"] + [f"L{i}" for i in range(1, 23)] + ["output"]
    assert sorted(chain) == sorted(zip(names, names[1:]))  # one chain through every layer, wrapped in rows


def test_unknown_figure_part_is_rejected():
    with pytest.raises(TypeError, match="unknown figure part"):
        draw_parts([object()])
    assert isinstance(StripFigure("s", []), StripFigure) and isinstance(CellFigure("c", [], []), CellFigure)


# ---------------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------------
def test_compare_means_over_seeds(runs, tmp_path, cli_ok):
    root = tmp_path / "seeds"
    made = [Path(nasforge.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 64,
                                 "threads": 1, "train": {"epochs": 1, "batch_size": 32, "seed": s}},
                                run_root=root, run_name=f"s{s}")["run_dir"]) for s in (0, 1, 2)]
    accs = [json.loads((r / "result.json").read_text())["test_accuracy"] for r in made]
    assert len(set(accs)) > 1, "seeds should give different accuracies"
    res = nasforge.compare(made + [runs["oneshot"]], out=tmp_path / "c.html", csv=tmp_path / "c.csv")
    (g,) = [g for g in res["groups"] if g["method"] == "train"]
    assert g["n"] == 3 and g["seeds"] == [0, 1, 2]
    assert g["test_accuracy"]["mean"] == pytest.approx(statistics.mean(accs))
    assert g["test_accuracy"]["std"] == pytest.approx(statistics.stdev(accs))
    (o,) = [g for g in res["groups"] if g["method"] == "single-darts"]
    assert o["n"] == 1 and o["test_accuracy"]["std"] is None
    text, p = check_page(tmp_path / "c.html")
    assert {"leaderboard", "scatter", "runs"} <= sections(p)
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert len(rows) == 4 and sorted(float(r["test_accuracy"]) for r in rows[:3]) == sorted(accs)

    out = cli_ok("compare", *map(str, made), "--out", str(tmp_path / "cli.html"))
    assert "leaderboard by configuration" in out and f"{statistics.mean(accs):.4g}" in out


@pytest.mark.skipif(not HAVE_TABLES, reason="benchmark tables not found")
def test_compare_table_accuracy_means(runs, tmp_path):
    res = compare_runs([runs[f"query{s}"] for s in (0, 1, 2)], out=None)
    vals = [json.loads((runs[f"query{s}"] / "result.json").read_text())["table"]["cifar10_test_200"] for s in (0, 1, 2)]
    (g,) = res["groups"]
    assert (g["method"], g["n"]) == ("evolution", 3)
    assert g["table_accuracy"]["mean"] == pytest.approx(statistics.mean(vals))
    assert res["html"] is None and res["csv"] is None


def test_mean_std():
    assert mean_std([]) == (None, None)
    assert mean_std([2.0]) == (2.0, None)
    m, s = mean_std([1.0, 2.0, 6.0])
    assert m == pytest.approx(3.0) and s == pytest.approx(statistics.stdev([1.0, 2.0, 6.0]))


def test_pareto_points_and_front():
    pts = [{"latency_ms": 1.0, "accuracy": 0.5}, {"latency_ms": 2.0, "accuracy": 0.7},
           {"latency_ms": 3.0, "accuracy": 0.6}, {"latency_ms": 0.5, "accuracy": 0.4}]
    points, front, xl, yl = pareto_points(pts)
    assert (xl, yl) == ("latency_ms", "accuracy") and len(points) == 4
    assert front == [(0.5, 0.4), (1.0, 0.5), (2.0, 0.7)]
    given = pareto_points({"points": pts, "front": pts[:2]})
    assert given[1] == [(1.0, 0.5), (2.0, 0.7)]
    assert pareto_points({"nothing": 1}) is None


def test_method_files_and_pareto_section(runs, tmp_path):
    run = tmp_path / "hw"
    shutil.copytree(runs["multitrial"], run)
    (run / "pareto_pixel3.json").write_text(json.dumps(
        [{"arch": "a", "latency_ms": 3.0, "accuracy": 0.8}, {"arch": "b", "latency_ms": 1.0, "accuracy": 0.7}]))
    text, p = check_page(Path(write_report(run)["report"]))
    assert {"pareto", "files"} <= sections(p)
    assert "pixel3: accuracy vs latency" in text


# ---------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing", "not found"),
    (lambda d: d, "is not a nasforge run directory (an empty folder)"),
    (lambda d: (d / "f.txt").write_text("x") and d / "f.txt", "is not a directory"),
    (lambda d: (d / "junk.txt").write_text("x") and d, "is not a nasforge run directory (no config.json)"),
])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_bad_run_directories(tmp_path, run_cli, make, needle, command):
    target = make(tmp_path)
    out = tmp_path / "out.html"
    code, _, err = run_cli(command, str(target), "--out", str(out))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.skipif(not HAVE_TABLES, reason="needs the NB201 table")
@pytest.mark.parametrize("damage, needle", [("{\"arch\": [1, 2", "is not valid JSON (Expecting"),
                                            ("[1, 2]", "holds a JSON list, not an object")])
def test_report_and_compare_name_an_unreadable_result_json(tmp_path, capsys, damage, needle):
    """A damaged result.json was read as 'in progress' without a word (issue 24's new-user trial)."""
    run = Path(nasforge.search({"method": "random", "estimator": "table", "tables": str(TABLES),
                                "budget": {"trials": 3}}, run_root=tmp_path, run_name="q")["run_dir"])
    (run / "result.json").write_text(damage)
    def stderr_of(*args: str) -> str:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as e:
            assert e.code in (0, None)
        return capsys.readouterr().err

    for command in (["report", str(run), "--out", str(tmp_path / "r.html")],
                    ["compare", str(run), "--out", str(tmp_path / "c.html")]):
        (line,) = [x for x in stderr_of(*command).splitlines() if x.startswith("warning:")]
        assert f"{run / 'result.json'}" in line and needle in line and "shown as unfinished" in line
    assert "Damaged files" in (tmp_path / "r.html").read_text()
    (run / "result.json").unlink()  # absent (a run in progress): nothing to warn about
    assert "warning" not in stderr_of("report", str(run), "--out", str(tmp_path / "r2.html"))


# ---------------------------------------------------------------------------------------------------
# a real browser
# ---------------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(browser.find_chromium() is None,
                                    reason="Chromium not installed (.ci/run installs Debian's chromium)")


@needs_chromium
def test_report_renders_in_headless_chromium(oneshot_page, tmp_path):
    import io

    from PIL import Image

    page = Path(oneshot_page["report"])
    shot = browser.screenshot(page, width=1000, height=700)
    assert shot.errors == []
    img = Image.open(io.BytesIO(shot.png)).convert("RGB")
    assert img.size == (1000, 700)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, header, figure: far from a blank page
    assert shot.content_height > 1500  # every section laid out, not only the header
    (tmp_path / "page.png").write_bytes(shot.png)


@needs_chromium
def test_browser_check_sees_console_errors(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); nope();</script></body></html>")
    errors = browser.screenshot(bad, width=400, height=300).errors
    assert any("boom" in e for e in errors) and any("nope" in e for e in errors)


def test_demo_ends_with_the_report_path(runs, monkeypatch, cli_ok):
    """`nasforge demo` (what `make demo` runs) writes its run's report last and prints where (the search itself
    is replaced by the tiny one-shot run here; the demo's own search takes minutes)."""
    from nasforge import api

    result = json.loads((runs["oneshot"] / "result.json").read_text())
    result["table"] = result.get("table") or {}
    for k in ("cifar10_test_200", "cifar100_test_200", "imagenet16-120_test_200"):
        result["table"].setdefault(k, None)
    monkeypatch.setattr(api, "search", lambda cfg, run_root, run_name: result)
    monkeypatch.setattr(api, "train", lambda cfg, run_root: {"test_accuracy": 0.5, "params": 10, "run_dir": "b"})
    last = cli_ok("demo", "--quiet").strip().splitlines()[-1]
    assert last == f"report: {runs['oneshot'] / 'report.html'}"
    check_page(runs["oneshot"] / "report.html")


def test_vit_subnet_is_a_block_table():
    from nasforge.spaces.vit import ViTSpace

    space = ViTSpace(identity_shift=True)
    arch = {"patch": 4, "embed": space.embeds[-1],
            "blocks": [None, {"heads": space.heads[0], "attn": space.attns[-1], "mlp": space.mlps[0]}]
            + [None] * (space.depth - 2)}
    (fig,) = space.figure(arch)
    assert isinstance(fig, TableFigure) and fig.columns[:3] == ["slot", "block", "heads"]
    assert fig.rows[0][0] == "embed" and len(fig.rows) == space.depth + 1
    # identity shifting moves the one block to the front: it runs the weights of slot 0
    assert fig.rows[1][1:4] == ["transformer block", space.heads[0], space.attns[-1]] and fig.rows[1][-1] == "slot 0"
    assert all(r[1] == "identity" for r in fig.rows[2:])


def test_multi_trial_in_progress_reads_the_journal(runs, tmp_path):
    """A multi-trial search logs its trials in batches; while one runs, finished trials are read from
    trials.sqlite, and the best so far is the architecture shown."""
    from nasforge.report.rundir import RunView

    run = tmp_path / "mt"
    shutil.copytree(runs["multitrial"], run, ignore=shutil.ignore_patterns("result.json", "search.json", "arch.json",
                                                                        "report.html"))
    (run / "metrics.jsonl").write_text("")
    logged = [json.loads(l) for l in (runs["multitrial"] / "metrics.jsonl").read_text().splitlines()]
    view = RunView.open(run)
    assert not view.finished and len(view.trials) == len(logged) == 2
    assert sorted(t.score for t in view.trials) == sorted(m["score"] for m in logged)
    best = max(logged, key=lambda m: m["score"])
    assert view.arch() == (best["arch"], "best of 2 trials so far (search in progress)")


def test_binary_costs_and_training_stages_are_shown(runs, tmp_path):
    """Binary networks report BOPs/FLOPs/OPs and per-stage results (BATS's two-stage recipe): the page shows
    whatever of these a result holds (here added to a real train run's result)."""
    run = tmp_path / "binary"
    shutil.copytree(runs["train"], run, ignore=shutil.ignore_patterns("report.html"))
    res = json.loads((run / "result.json").read_text())
    res.update({"flops": 1_776_256, "bops": 7_400_960, "ops": 7_400_960 / 64 + 1_776_256,
                "stages": [{"stage": 1, "binarization": "activations", "test_accuracy": 0.61},
                           {"stage": 2, "binarization": "weights+activations", "test_accuracy": 0.55}]})
    (run / "result.json").write_text(json.dumps(res))
    text, p = check_page(Path(write_report(run)["report"]))
    for label, value in (("bops", "7,400,960"), ("flops", "1,776,256"), ("ops", "1,891,896")):
        assert re.search(rf"<th>{label}</th><td>{value}</td>", text), label
    assert "weights+activations" in text and ">stages<" in text
    row = run_row_of(run)
    assert (row["bops"], row["flops"], row["ops"]) == (7_400_960, 1_776_256, 7_400_960 / 64 + 1_776_256)


def run_row_of(run: Path) -> dict:
    from nasforge.report.compare import run_row
    from nasforge.report.rundir import RunView

    return run_row(RunView.open(run))


def test_bats_cells_are_drawn_like_darts_cells():
    bats = pytest.importorskip("nasforge.spaces.bats")
    import random

    space = bats.BatsSpace()
    arch = space.validate(space.sample(random.Random(0)))
    normal, reduce = space.figure(arch)
    assert [(s, d, op) for s, d, op in normal.edges if op] == \
        [({0: "c_{k-2}", 1: "c_{k-1}"}.get(i, str(i - 2)), str(k // 2), op) for k, (op, i) in enumerate(arch["normal"])]
    assert "digraph" in cell_graph(reduce).source


def test_compare_terminal_output_reads_at_80_columns(tmp_path, cli_ok, monkeypatch):
    """At 80 columns the leaderboard and the runs are blocks of "label  value" lines with every number whole
    (the 9-column table folded `18,289,792` into `18,` / `289` / `,79` and headers into 2-letter slivers); a wide
    terminal keeps the tables; the CSV does not depend on the width."""
    import io

    from rich.console import Console

    import nasforge.cli

    root = tmp_path / "runs"
    made = [Path(nasforge.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 64,
                                 "threads": 1, "train": {"epochs": e, "batch_size": 32, "seed": s}},
                                run_root=root, run_name=f"e{e}s{s}")["run_dir"]) for e, s in ((1, 0), (1, 1), (2, 0))]
    res = nasforge.compare(made, out=None)
    (g1,) = [g for g in res["groups"] if g["n"] == 2]
    numbers = [pm(g1["test_accuracy"]), pm(g1["flops"]), fmt(res["runs"][0]["flops"]), fmt(res["runs"][1]["test_accuracy"])]
    texts = {}
    for width in (80, 250):
        monkeypatch.setattr(nasforge.cli, "out", Console(width=width, file=io.StringIO()))
        cli_ok("compare", *map(str, made), "--out", str(tmp_path / "c.html"), "--csv", str(tmp_path / f"{width}.csv"))
        texts[width] = nasforge.cli.out.file.getvalue()
    narrow, wide = texts[80], texts[250]
    assert max(len(line) for line in narrow.splitlines() if not line.startswith("HTML: ")) <= 80  # paths: whole
    lines = [" ".join(line.split()) for line in narrow.splitlines()]
    assert "test acc (retrained) " + pm(g1["test_accuracy"]) in lines and "config train.epochs=2" in lines
    assert all(any(n in line for line in lines) for n in numbers), narrow
    assert "┃" not in narrow and "┃" in wide  # the wide terminal keeps the tables, with the same numbers
    assert all(n in wide for n in numbers)
    assert (tmp_path / "80.csv").read_text() == (tmp_path / "250.csv").read_text()
