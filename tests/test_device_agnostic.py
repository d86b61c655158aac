"""No module under src/ may create a tensor on a hard-coded device.

A static check over every module's syntax tree; it fails with the file:line of each offence:

* a tensor factory (``torch.zeros``, ``torch.tensor``, ``torch.randn``, ``torch.arange``, ``torch.Generator``,
  ...) called without ``device=`` makes a CPU tensor whatever device the run uses. Allowed without it:
  inside an ``__init__`` (module construction: parameters and buffers move with ``model.to(device)``), or
  with a ``# host: <reason>`` comment on the call's lines for data that is host-side on purpose (random
  draws on a CPU generator so every device sees the same batches, path indices read as Python ints, ...);
* ``.cuda()``, a literal ``"cuda"``/``"mps"`` device, or a literal ``"cpu"`` device without ``# host:``;
* ``.numpy()`` not directly after ``.cpu()`` (fails on a device tensor) without ``# host:``.

``nasforge/accel.py`` is exempt from the literal-device rules: it is where device strings become devices.
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
FACTORIES = {"tensor", "zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint", "randperm",
             "linspace", "logspace", "eye", "as_tensor", "from_numpy", "Generator", "normal", "range",
             "empty_strided", "sparse_coo_tensor", "tril_indices", "triu_indices", "scalar_tensor"}
DEVICE_WORDS = ("cuda", "mps", "cpu", "xpu")


def _host_lines(text: str) -> set[int]:
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT and "host:" in tok.string:
            lines.add(tok.start[0])
    return lines


def _is_device_literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        v = node.value.split(":")[0]
        if v in DEVICE_WORDS:
            return node.value
    return None


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, host: set[int]) -> None:
        self.path, self.host = path, host
        self.problems: list[str] = []
        self.functions: list[str] = []

    def _marked(self, node: ast.AST) -> bool:
        end = getattr(node, "end_lineno", node.lineno)
        return any(line in self.host for line in range(node.lineno, end + 1))

    def _report(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.path.relative_to(SRC)}:{node.lineno}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(f, ast.Attribute):
            if f.attr == "cuda":
                self._report(node, ".cuda() hard-codes the device; use .to(device)")
            if f.attr == "numpy" and not self._marked(node):
                inner = f.value
                if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                        and inner.func.attr == "cpu"):
                    self._report(node, ".numpy() without .cpu() fails on a device tensor (or mark '# host:')")
            if (isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in FACTORIES
                    and "device" not in kwargs and not self._marked(node)
                    and "__init__" not in self.functions):
                self._report(node, f"torch.{f.attr}(...) without device= creates a CPU tensor "
                                   "(pass device=..., or mark deliberate host data with '# host: <reason>')")
            if isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr == "device" and node.args:
                lit = _is_device_literal(node.args[0])
                if lit and (lit.split(":")[0] != "cpu" or not self._marked(node)):
                    self._report(node, f"torch.device({lit!r}) hard-codes the device")
            if f.attr == "to" and node.args:
                lit = _is_device_literal(node.args[0])
                if lit and (lit.split(":")[0] != "cpu" or not self._marked(node)):
                    self._report(node, f".to({lit!r}) hard-codes the device")
        for key in ("device", "map_location"):
            lit = _is_device_literal(kwargs[key]) if key in kwargs else None
            if lit and (lit.split(":")[0] != "cpu" or not self._marked(node)):
                self._report(node, f"{key}={lit!r} hard-codes the device")
        self.generic_visit(node)


def _problems(path: Path) -> list[str]:
    text = path.read_text()
    checker = _Checker(path, _host_lines(text))
    checker.visit(ast.parse(text, filename=str(path)))
    if path.relative_to(SRC).as_posix() == "nasforge/accel.py":
        return [p for p in checker.problems if "hard-codes the device" not in p]
    return checker.problems


def test_no_module_creates_a_tensor_on_a_hard_coded_device():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    problems = [p for f in files for p in _problems(f)]
    assert not problems, "tensors on a hard-coded device:\n" + "\n".join(problems)


@pytest.mark.parametrize("code,bad", [
    ("import torch\ndef f(x):\n    return torch.zeros(3)\n", True),
    ("import torch\ndef f(x):\n    return torch.zeros(3, device=x.device)\n", False),
    ("import torch\ndef f(x):\n    return torch.zeros(3)  # host: a CPU scratch buffer\n", False),
    ("import torch\nclass M:\n    def __init__(self):\n        self.w = torch.randn(3)\n", False),
    ("import torch\ndef f(x):\n    return x.cuda()\n", True),
    ("import torch\ndef f(x):\n    return x.to('cuda:0')\n", True),
    ("import torch\ndef f(x):\n    return torch.ones(2, device='cpu')\n", True),
    ("import torch\ndef f(x):\n    return torch.ones(2, device='cpu')  # host: why\n", False),
    ("import torch\ndef f(x):\n    return x.numpy()\n", True),
    ("import torch\ndef f(x):\n    return x.detach().cpu().numpy()\n", False),
    ("import torch\ndef f(p):\n    return torch.load(p, map_location='cuda')\n", True),
])
def test_the_check_catches_what_it_should(tmp_path, monkeypatch, code, bad):
    f = SRC / "_probe_not_a_module.py"
    checker = _Checker(f, _host_lines(code))
    checker.visit(ast.parse(code))
    assert bool(checker.problems) == bad, checker.problems
