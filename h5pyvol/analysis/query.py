"""Queries (H5Q): predicates on element values, attributes and link names.

A `Query` is a tree of predicates combined with ``&``, ``|`` and ``~``. It
owns three ways of answering:

- `Query.mask` evaluates it on the numpy values of one block of elements
  (plus the object's attributes and link name), giving a boolean mask, or a
  plain bool when only object-level predicates decide;
- `Query.prune` answers from a zone map (a chunk's minimum and maximum)
  whether a chunk can match at all (`NEVER`), surely matches every element
  (`ALWAYS`), or must be read (`MAYBE`): pushdown before any byte moves;
- `Query.to_json` / `Query.from_json` round-trip it as JSON, so it travels
  to workers, to other languages and into saved views.

Build queries from `Q`:

    Q.value > 3                    # the first input's element values
    Q.value("temperature") <= 0.5  # the values of input "temperature"
    Q.value.between(1, 2)          # 1 <= value <= 2
    Q.attr_name == "units"         # the object has an attribute "units"
    Q.attr("units") == "K"         # ... whose value (or one of its elements) is "K"
    Q.link_name.like("temp*")      # the object's link name matches a glob
    (Q.value > 3) & ~Q.attr("flagged")
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

NEVER, MAYBE, ALWAYS = "never", "maybe", "always"
"""`Query.prune` answers: a chunk cannot match, may match, or matches entirely."""

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
}


class Query:
    """A predicate tree. Build one from `Q`; combine with ``&``, ``|``, ``~``."""

    kind: str = ""

    # -- combination -----------------------------------------------------
    def __and__(self, other: Query) -> Query:
        return _Combine("and", [self, _as_query(other)])

    def __or__(self, other: Query) -> Query:
        return _Combine("or", [self, _as_query(other)])

    def __invert__(self) -> Query:
        return _Not(self)

    def __bool__(self) -> bool:
        raise TypeError("a Query has no truth value: combine queries with &, | and ~ (not and, or, not)")

    # -- JSON --------------------------------------------------------------
    def to_dict(self) -> dict:
        """The query as plain JSON values."""
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_json(text: str | dict) -> Query:
        """A query from `to_json`'s text (or `to_dict`'s dict); ValueError names what is wrong."""
        data = json.loads(text) if isinstance(text, str | bytes) else text
        return _from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return f"Query({self.to_json()})"

    # -- what the query looks at ---------------------------------------------
    def leaves(self) -> list[Query]:
        return [self]

    def value_inputs(self) -> set[str | None]:
        """The inputs whose element values the query reads (None: the first input)."""
        return {leaf.input for leaf in self.leaves() if isinstance(leaf, _Value)}

    @property
    def reads_values(self) -> bool:
        return bool(self.value_inputs())

    # -- evaluation ------------------------------------------------------------
    def mask(self, values: Callable[[str | None], np.ndarray], attrs: Mapping[str, Any] | None = None,
             link_name: str = "") -> bool | np.ndarray:
        """Evaluate on one block: `values(name)` gives an input's elements (None:
        the first input's), or None for an object without values (a group).
        Returns a boolean array, or a bool when only object-level predicates
        (attributes, link names) decided."""
        raise NotImplementedError

    def prune(self, zone: Mapping | None, exact: bool, attrs: Mapping[str, Any] | None = None,
              link_name: str = "", first: str | None = None) -> str:
        """`NEVER`, `MAYBE` or `ALWAYS` for a chunk of the first input (named
        `first`) whose zone map is `zone` (``min``/``max``, NaNs ignored; None
        when unknown). `exact` says the values can hold no NaN (integers),
        without which no value predicate can be proven true for every element."""
        raise NotImplementedError


def _as_query(obj: Any) -> Query:
    if not isinstance(obj, Query):
        raise TypeError(f"cannot combine a Query with {type(obj).__name__}")
    return obj


def _plain(value: Any) -> Any:
    """A JSON-able scalar for a predicate's argument."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, bool | int | float | str):
        raise TypeError(f"a query compares with numbers or strings, not {type(value).__name__}")
    return value


class _Value(Query):
    """A comparison of element values with constants."""

    kind = "value"

    def __init__(self, input: str | None, op: str, args: list):
        if op not in COMPARISONS and op != "between":
            raise ValueError(f"unknown value comparison {op!r}")
        self.input, self.op, self.args = input, op, [_plain(a) for a in args]
        if op == "between" and not self.args[0] <= self.args[1]:
            raise ValueError(f"between({self.args[0]!r}, {self.args[1]!r}): the low bound is above the high one")

    def to_dict(self) -> dict:
        return {"kind": "value", "input": self.input, "op": self.op, "args": list(self.args)}

    def mask(self, values, attrs=None, link_name=""):
        data = values(self.input)
        if data is None:  # an object without values (a group)
            return False
        if self.op == "between":
            lo, hi = self.args
            return np.logical_and(data >= lo, data <= hi)
        return _NUMPY_OPS[self.op](data, self.args[0])

    def prune(self, zone, exact, attrs=None, link_name="", first=None):
        if self.input not in (None, first) or not zone or "min" not in zone or "max" not in zone:
            return MAYBE
        lo, hi = zone["min"], zone["max"]
        try:
            return self._prune(lo, hi, exact)
        except TypeError:  # e.g. a string compared with numbers: let the data decide
            return MAYBE

    def _prune(self, lo, hi, exact: bool) -> str:
        op, args = self.op, self.args
        if isinstance(args[0], float) and math.isnan(args[0]):
            return NEVER if op != "!=" else MAYBE  # NaN equals nothing and orders with nothing
        if op == "between":
            a, b = args
            if hi < a or lo > b:
                return NEVER
            return ALWAYS if exact and a <= lo and hi <= b else MAYBE
        c = args[0]
        never = {"==": c < lo or c > hi, "!=": exact and lo == hi == c,
                 "<": lo >= c, "<=": lo > c, ">": hi <= c, ">=": hi < c}[op]
        if never:
            return NEVER
        # "!=" holds for a NaN too, so a range that excludes c proves it even for floats.
        always = {"==": exact and lo == hi == c, "!=": c < lo or c > hi,
                  "<": exact and hi < c, "<=": exact and hi <= c, ">": exact and lo > c, ">=": exact and lo >= c}[op]
        return ALWAYS if always else MAYBE


class _ObjectLevel(Query):
    """A predicate on the object itself: decided exactly, before any value is read."""

    def prune(self, zone, exact, attrs=None, link_name="", first=None):
        return ALWAYS if self.mask(None, attrs, link_name) else NEVER


class _NamePredicate(_ObjectLevel):
    """A name equals, differs from, or matches a glob."""

    def __init__(self, op: str, pattern: str):
        self.op, self.pattern = _check_name_op(op), _plain(pattern)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "op": self.op, "args": [self.pattern]}


class _AttrName(_NamePredicate):
    """The object has an attribute whose name matches."""

    kind = "attr_name"

    def matching(self, attrs: Mapping[str, Any] | None) -> list[str]:
        return [n for n in (attrs or {}) if _name_matches(self.op, n, self.pattern)]

    def mask(self, values, attrs=None, link_name=""):
        return bool(self.matching(attrs))


class _AttrValue(_ObjectLevel):
    """The object has attribute `name`, whose value (or one of its elements) compares true."""

    kind = "attr_value"

    def __init__(self, name: str, op: str, args: list):
        if op not in COMPARISONS and op != "between":
            raise ValueError(f"unknown attribute comparison {op!r}")
        self.name, self.op, self.args = _plain(name), op, [_plain(a) for a in args]

    def to_dict(self) -> dict:
        return {"kind": "attr_value", "name": self.name, "op": self.op, "args": list(self.args)}

    def matching(self, attrs: Mapping[str, Any] | None) -> list[str]:
        if not attrs or self.name not in attrs:
            return []
        value = np.asarray(attrs[self.name])
        if value.dtype.kind in "SO":  # h5py gives bytes or str objects for strings
            value = np.array([v.decode() if isinstance(v, bytes) else v for v in value.ravel()], dtype=object)
        try:
            if self.op == "between":
                hit = np.logical_and(value >= self.args[0], value <= self.args[1])
            else:
                hit = _NUMPY_OPS[self.op](value, self.args[0])
            return [self.name] if bool(np.any(hit)) else []
        except TypeError:  # not comparable (a string with a number): no match
            return []

    def mask(self, values, attrs=None, link_name=""):
        return bool(self.matching(attrs))


class _LinkName(_NamePredicate):
    """The object's link name (the last component of its path) matches."""

    kind = "link_name"

    def mask(self, values, attrs=None, link_name=""):
        return _name_matches(self.op, link_name.rstrip("/").rsplit("/", 1)[-1], self.pattern)


def _check_name_op(op: str) -> str:
    if op not in ("==", "!=", "like"):
        raise ValueError(f"names compare with ==, != or like(glob), not {op!r}")
    return op


def _name_matches(op: str, name: str, pattern: str) -> bool:
    if op == "like":
        return fnmatch.fnmatchcase(name, pattern)
    return (name == pattern) == (op == "==")


class _Combine(Query):
    def __init__(self, kind: str, args: list[Query]):
        self.kind = kind
        # Flatten a & (b & c) so deep chains stay shallow.
        self.args = [leaf for a in args for leaf in (a.args if isinstance(a, _Combine) and a.kind == kind else [a])]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "args": [a.to_dict() for a in self.args]}

    def leaves(self) -> list[Query]:
        return [leaf for a in self.args for leaf in a.leaves()]

    def mask(self, values, attrs=None, link_name=""):
        join = np.logical_and if self.kind == "and" else np.logical_or
        out = None
        for a in self.args:
            m = a.mask(values, attrs, link_name)
            out = m if out is None else join(out, m)
        return out if isinstance(out, np.ndarray) else bool(out)

    def prune(self, zone, exact, attrs=None, link_name="", first=None):
        answers = {a.prune(zone, exact, attrs, link_name, first) for a in self.args}
        if self.kind == "and":
            return NEVER if NEVER in answers else ALWAYS if answers == {ALWAYS} else MAYBE
        return ALWAYS if ALWAYS in answers else NEVER if answers == {NEVER} else MAYBE


class _Not(Query):
    kind = "not"

    def __init__(self, arg: Query):
        self.arg = _as_query(arg)

    def to_dict(self) -> dict:
        return {"kind": "not", "args": [self.arg.to_dict()]}

    def leaves(self) -> list[Query]:
        return self.arg.leaves()

    def mask(self, values, attrs=None, link_name=""):
        m = self.arg.mask(values, attrs, link_name)
        return np.logical_not(m) if isinstance(m, np.ndarray) else not m

    def prune(self, zone, exact, attrs=None, link_name="", first=None):
        return {NEVER: ALWAYS, ALWAYS: NEVER, MAYBE: MAYBE}[self.arg.prune(zone, exact, attrs, link_name, first)]


def _from_dict(d: Any) -> Query:
    if not isinstance(d, dict) or "kind" not in d:
        raise ValueError(f"not a query: {d!r}")
    kind, args = d["kind"], d.get("args", [])
    if kind in ("and", "or"):
        if len(args) < 2:
            raise ValueError(f"{kind!r} needs at least two queries")
        return _Combine(kind, [_from_dict(a) for a in args])
    if kind == "not":
        return _Not(_from_dict(args[0]))
    if kind == "value":
        return _Value(d.get("input"), d["op"], args)
    if kind == "attr_value":
        return _AttrValue(d["name"], d["op"], args)
    if kind == "attr_name":
        return _AttrName(d["op"], args[0])
    if kind == "link_name":
        return _LinkName(d["op"], args[0])
    raise ValueError(f"unknown query kind {kind!r}")


# ---------------------------------------------------------------- builders


class _Comparable:
    """Comparison operators that build a query leaf (`_leaf(op, args)`)."""

    def _leaf(self, op: str, args: list) -> Query:
        raise NotImplementedError

    def __eq__(self, other):  # type: ignore[override]
        return self._leaf("==", [other])

    def __ne__(self, other):  # type: ignore[override]
        return self._leaf("!=", [other])

    def __lt__(self, other):
        return self._leaf("<", [other])

    def __le__(self, other):
        return self._leaf("<=", [other])

    def __gt__(self, other):
        return self._leaf(">", [other])

    def __ge__(self, other):
        return self._leaf(">=", [other])

    def between(self, low: Any, high: Any) -> Query:
        """low <= x <= high."""
        return self._leaf("between", [low, high])

    __hash__ = None  # type: ignore[assignment]


class ValueRef(_Comparable):
    """The element values of an input; call it with a name for another input."""

    def __init__(self, input: str | None = None):
        self.input = input

    def __call__(self, input: str) -> ValueRef:
        return ValueRef(input)

    def _leaf(self, op, args):
        return _Value(self.input, op, args)


class AttrRef(_Comparable):
    """The value of one attribute of the object."""

    def __init__(self, name: str):
        self.name = name

    def _leaf(self, op, args):
        return _AttrValue(self.name, op, args)


class NameRef:
    """A name (of an attribute, or the link to the object): ==, != or like(glob)."""

    def __init__(self, cls: type[Query]):
        self._cls = cls

    def __eq__(self, other):  # type: ignore[override]
        return self._cls("==", other)

    def __ne__(self, other):  # type: ignore[override]
        return self._cls("!=", other)

    def like(self, pattern: str) -> Query:
        """Matches a shell-style glob (``*``, ``?``, ``[...]``)."""
        return self._cls("like", pattern)

    __hash__ = None  # type: ignore[assignment]


class Q:
    """Query builders (H5Q): `Q.value`, `Q.attr(name)`, `Q.attr_name`, `Q.link_name`."""

    value = ValueRef()
    attr_name = NameRef(_AttrName)
    link_name = NameRef(_LinkName)

    @staticmethod
    def attr(name: str) -> AttrRef:
        return AttrRef(name)

    from_json = staticmethod(Query.from_json)


def as_query(query: Query | str | dict | None) -> Query | None:
    """A Query from a Query, its JSON text or dict, or None."""
    if query is None or isinstance(query, Query):
        return query
    if isinstance(query, str | bytes | dict):
        return Query.from_json(query)
    raise TypeError(f"query must be a Query (see h5pyvol.analysis.Q) or its JSON, not {type(query).__name__}")
