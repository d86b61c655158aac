"""Typed option declarations and the one validator every option goes through.

Strategies (``Strategy.defaults``), search spaces (``SearchSpace.defaults``), training options
(``TrainConfig``), and the top-level run config declare their options as a plain mapping
``name -> default``. A plain default already declares a type:

=====================  =====================================================================
default                accepted values
=====================  =====================================================================
``True`` / ``False``   booleans (and the strings true/false/yes/no)
``16`` (int)           integers; ``16.0``, ``"1e3"`` are fine, ``4.5`` or ``"abc"`` are not
``0.025`` (float)      any finite number in any notation (``1e-3``, ``"3e-4"``, ``2``)
``"softmax"`` (str)    strings
``(0.5, 0.999)``       a list of exactly that many numbers (a tuple default fixes the length)
``[1, 2]``             a list of numbers of any length
``{"a": 0, ...}``      a nested section, each key declared by its default (recursively)
``None``               anything (use ``Opt(None, type=...)`` to type it)
=====================  =====================================================================

Where a default alone says too little, wrap it in :class:`Opt`::

    defaults = {
        "w_lr": Opt(0.025, ">0"),                      # range: >0, >=1, <1, "[0, 1)", "(0, inf)"
        "order": Opt(1, choices=(1, 2)),
        "K": Opt(None, ">=1", type=int),               # None allowed (a default None is nullable)
        "grad_clip": Opt(5.0, ">0", nullable=True),    # a number or null
        "arch_betas": Opt((0.5, 0.999), "[0, 1)"),     # the range applies to each element
        "hparams": Opt({}, type=dict),                 # any mapping, checked later by its owner
    }

``resolve(declaration, given, where)`` checks every given value (unknown keys, types, ranges, choices,
nested shapes), fills in the defaults and returns plain values; it raises :class:`ConfigError` with one line
naming the offending key, e.g. ``strategy 'darts' hyperparameter order must be one of 1, 2; got 3``. Code
that reads options (``self.hp``, ``space.options``) therefore only ever sees checked, plain values.
``describe`` renders a declaration for ``nasforge list``.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterable, Mapping

from .errors import ConfigError

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}
_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no", "off"}
_RANGE_RE = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])\s*$")
_CMP_RE = re.compile(r"^\s*(>=|<=|>|<)\s*(\S+)\s*$")


def _num(text: str) -> float:
    t = text.strip().lower()
    if t in ("inf", "+inf", "infinity"):
        return math.inf
    if t in ("-inf", "-infinity"):
        return -math.inf
    return float(t)


class Opt:
    """One declared option: its default, type, optional range, choices and nullability.

    Args:
        default: the value used when the option is not given (plain JSON).
        range: ``">0"``, ``">=1"``, ``"<1"``, ``"<=10"``, or an interval ``"[0, 1)"`` / ``"(0, inf)"``
            (bounds inclusive with ``[``/``]``, exclusive with ``(``/``)``); numbers only.
        type: bool | int | float | str | list | dict, or None for "anything"; inferred from `default`
            when omitted.
        choices: the allowed values (after type conversion).
        nullable: whether ``None`` (YAML ``null``) is accepted; default: True exactly when `default` is None.
        items: element type of a list (inferred from the default's first element).
        help: one line shown by ``nasforge list``.

    Raises:
        ValueError: the declaration itself is malformed (a programming error, not user input).
    """

    __slots__ = ("default", "type", "lo", "hi", "lo_open", "hi_open", "choices", "nullable", "items", "length",
                 "help", "range")

    _INFER = object()

    def __init__(self, default: Any, range: str | None = None, *, type: Any = _INFER,
                 choices: Iterable[Any] | None = None, nullable: bool | None = None, items: type | None = None,
                 help: str = "") -> None:
        self.default = default
        if type is Opt._INFER:
            type = _infer_type(default)
        if type not in (None, bool, int, float, str, list, dict):
            raise ValueError(f"unsupported option type {type!r}")
        self.type = type
        self.nullable = default is None if nullable is None else nullable
        self.choices = tuple(choices) if choices is not None else None
        self.help = help
        self.range = range
        self.lo, self.hi, self.lo_open, self.hi_open = -math.inf, math.inf, False, False
        if range is not None:
            self._parse_range(range)
        self.length = len(default) if isinstance(default, tuple) else None
        if items is None and type is list and default:
            items = _infer_type(default[0])
        self.items = items if type is list else None

    def _parse_range(self, text: str) -> None:
        m = _CMP_RE.match(text)
        if m:
            op, v = m.group(1), _num(m.group(2))
            if op in (">", ">="):
                self.lo, self.lo_open = v, op == ">"
            else:
                self.hi, self.hi_open = v, op == "<"
            return
        m = _RANGE_RE.match(text)
        if not m:
            raise ValueError(f"bad range {text!r}: write '>0', '>=1', '[0, 1)', '(0, inf)', ...")
        self.lo, self.hi = _num(m.group(2)), _num(m.group(3))
        self.lo_open, self.hi_open = m.group(1) == "(", m.group(4) == ")"

    # -- checking ----------------------------------------------------------------------------------
    def check(self, value: Any, name: str) -> Any:
        """The checked, converted value; raises ConfigError naming `name`."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{name} must be {self.kind()}; got null")
        if self.type is None:
            if self.choices is not None and value not in self.choices:
                raise ConfigError(f"{name} must be one of {', '.join(map(str, self.choices))}; got {_show(value)}")
            return value
        if self.type is list:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{name} must be {self.kind()}; got {_show(value)}")
            if self.length is not None and len(value) != self.length:
                raise ConfigError(f"{name} must be a list of {self.length} values; got {_show(value)}")
            return [self._scalar(v, self.items, f"{name}[{i}]") for i, v in enumerate(value)]
        if self.type is dict:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name} must be a mapping (key: value); got {_show(value)}")
            return dict(value)
        return self._scalar(value, self.type, name)

    def _scalar(self, value: Any, typ: Any, name: str) -> Any:
        v = _convert(value, typ, name, self)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            self._check_range(v, name)
        if self.choices is not None and v not in self.choices:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, self.choices))}; got {_show(value)}")
        return v

    def _check_range(self, v: float, name: str) -> None:
        below = v < self.lo or (self.lo_open and v == self.lo)
        above = v > self.hi or (self.hi_open and v == self.hi)
        if below or above:
            raise ConfigError(f"{name} must be {_TYPE_NAMES.get(self.items or self.type, 'a number')} "
                              f"{self.range_text()}; got {_show(v)}")

    # -- describing ---------------------------------------------------------------------------------
    def kind(self) -> str:
        """The type in words: "an integer", "a list of 2 numbers", ..."""
        if self.type is list:
            inner = _TYPE_NAMES.get(self.items, "a value").split(" ", 1)[-1] if self.items else "value"
            n = f"{self.length} " if self.length is not None else ""
            return f"a list of {n}{inner}s"
        return _TYPE_NAMES.get(self.type, "a value")

    def range_text(self) -> str:
        """The range in words: ">= 1", "in [0, 1)", or "" when unbounded."""
        if self.lo == -math.inf and self.hi == math.inf:
            return ""
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '>='} {_fmt(self.lo)}"
        if self.lo == -math.inf:
            return f"{'<' if self.hi_open else '<='} {_fmt(self.hi)}"
        return f"in {'(' if self.lo_open else '['}{_fmt(self.lo)}, {_fmt(self.hi)}{')' if self.hi_open else ']'}"

    def describe(self) -> str:
        """E.g. ``an integer >= 1 (or null), default 16``."""
        if self.choices is not None and self.type is list:
            parts = [f"{self.kind()}, each one of {', '.join(map(str, self.choices))}"]
        elif self.choices is not None:
            parts = [f"one of {', '.join(map(str, self.choices))}"]
        else:
            parts = [self.kind()]
            if self.range_text():
                parts.append(self.range_text())
        if self.nullable and self.type is not None:
            parts.append("(or null)")
        text = " ".join(parts) + f", default {_show(self.default)}"
        return f"{text}; {self.help}" if self.help else text

    def __repr__(self) -> str:
        return f"Opt({self.default!r}: {self.describe()})"


def _infer_type(default: Any) -> Any:
    if default is None:
        return None
    for t in (bool, int, float, str):
        if isinstance(default, t):
            return t
    if isinstance(default, (list, tuple)):
        return list
    if isinstance(default, Mapping):
        return dict
    return None


def _convert(value: Any, typ: Any, name: str, opt: Opt) -> Any:
    kind = _TYPE_NAMES.get(typ, "a value")
    if typ is None:
        return value
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{name} must be true or false; got {_show(value)}")
    if typ is str:
        if isinstance(value, str):
            return value
        hint = f" (one of {', '.join(map(str, opt.choices))})" if opt.choices else ""
        raise ConfigError(f"{name} must be {kind}{hint}; got {_show(value)}")
    # numbers: ints, floats, and strings in any notation ("1e-3", "3e-4": YAML 1.1 reads them as strings)
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be {kind}; got {_show(value)}")
    x: Any = value
    if isinstance(value, str):
        try:
            x = float(value) if typ is float else _num_or_int(value)
        except ValueError:
            raise ConfigError(f"{name} must be {kind}; got {_show(value)}") from None
    if not isinstance(x, (int, float)):
        raise ConfigError(f"{name} must be {kind}; got {_show(value)}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ConfigError(f"{name} must be a finite number; got {_show(value)}")
    if typ is int:
        if isinstance(x, float):
            if not x.is_integer():
                raise ConfigError(f"{name} must be an integer; got {_show(value)}")
            x = int(x)
        return int(x)
    return float(x)


def _num_or_int(text: str) -> int | float:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        return float(t)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        value = list(value)
    text = str(value).replace("True", "true").replace("False", "false").replace("None", "null")
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------------
# declarations
# ---------------------------------------------------------------------------------------------------
def as_opt(decl: Any) -> Opt:
    """A declaration entry as an Opt (a plain default declares its type)."""
    return decl if isinstance(decl, Opt) else Opt(decl)


def is_section(decl: Any) -> bool:
    """A nested section: a plain (non-Opt) dict default with at least one key."""
    return isinstance(decl, Mapping) and len(decl) > 0


def defaults(declaration: Mapping[str, Any]) -> dict[str, Any]:
    """The plain default values of a declaration (Opt wrappers removed; tuples become lists)."""
    out: dict[str, Any] = {}
    for k, d in declaration.items():
        if is_section(d):
            out[k] = defaults(d)
        else:
            v = as_opt(d).default
            out[k] = list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, Mapping) else v)
    return out


def resolve(declaration: Mapping[str, Any], given: Mapping[str, Any] | None, where: str,
            *, fill: bool = True, noun: str = "option", prefix: str = "") -> dict[str, Any]:
    """Check `given` against `declaration` and return plain values (defaults filled in when `fill`).

    Args:
        declaration: name -> default or Opt or nested section (see the module docstring).
        given: the user's values; may be None or empty.
        where: what the options belong to, used in messages (e.g. ``"strategy 'darts'"``; may be empty).
        noun: what one option is called in messages ("hyperparameter", "config key", ...).
        prefix: the dotted path of a nested section (used in messages: ``budget.epochs``).

    Raises:
        ConfigError: an unknown key (the valid ones are listed), a value of the wrong type, out of range,
            not among the choices, or a section that is not a mapping.
    """
    def name(k: Any) -> str:
        return " ".join(p for p in (where, noun, f"{prefix}{k}") if p)

    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        what = prefix.rstrip(".") or f"{noun}s"
        raise ConfigError(" ".join(p for p in (where, what) if p) + f" must be a mapping (key: value); got {_show(given)}")
    unknown = [f"{prefix}{k}" for k in given if k not in declaration]
    if unknown:
        raise ConfigError(f"unknown {noun}(s) {sorted(unknown)}{' for ' + where if where else ''}; valid: "
                          f"{', '.join(prefix + k for k in sorted(map(str, declaration))) or 'none'}")
    out = defaults(declaration) if fill else {}
    for k, v in given.items():
        d = declaration[k]
        if is_section(d):
            if not isinstance(v, Mapping):
                raise ConfigError(f"{name(k)} must be a mapping with keys {', '.join(sorted(d))}; got {_show(v)}")
            out[k] = resolve(d, v, where, fill=fill, noun=noun, prefix=f"{prefix}{k}.")
        else:
            out[k] = as_opt(d).check(v, name(k))
    return out


def describe(declaration: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(name, "type range, default ...") rows, nested sections flattened as ``section.key``."""
    rows: list[tuple[str, str]] = []
    for k in sorted(declaration):
        d = declaration[k]
        if is_section(d):
            rows.extend(describe(d, f"{prefix}{k}."))
        else:
            rows.append((f"{prefix}{k}", as_opt(d).describe()))
    return rows


def field(default: Any, range: str | None = None, **kw: Any) -> Any:
    """A dataclass field that carries its declaration: ``lr: float = options.field(0.05, ">0")``."""
    return dataclasses.field(default=default, metadata={"opt": Opt(default, range, **kw)})


def of_dataclass(cls: type) -> dict[str, Opt]:
    """The declaration of a dataclass's fields (metadata from :func:`field`, else inferred from the default)."""
    out: dict[str, Opt] = {}
    for f in dataclasses.fields(cls):
        if "opt" in f.metadata:
            out[f.name] = f.metadata["opt"]
        elif f.default is not dataclasses.MISSING:
            out[f.name] = Opt(f.default)
        else:
            out[f.name] = Opt(None)
    return out


def check_dataclass(obj: Any, where: str, noun: str = "option") -> None:
    """Check (and convert in place) every field of a dataclass instance against its declaration."""
    for name, opt in of_dataclass(type(obj)).items():
        setattr(obj, name, opt.check(getattr(obj, name), " ".join(p for p in (where, noun, name) if p)))


__all__ = ["Opt", "resolve", "defaults", "describe", "as_opt", "is_section", "field", "of_dataclass",
           "check_dataclass"]
