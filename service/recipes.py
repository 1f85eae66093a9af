"""Composite reward recipes: named weighted sums of served models' rewards and label probabilities.

A recipe is configured by name (``ServiceConfig.composites``) and scored like a model: a request
for model ``NAME`` scores each item with every model the recipe uses (concurrently, each through
its own batcher) and returns the total as ``reward`` with the parts.

Two equivalent forms, in TOML::

    [composites]
    safe_hh = "hh - 0.5*toxicity:toxic"           # expression
    safe_hh2 = [{model = "hh"}, {model = "toxicity", weight = -0.5, label = "toxic"}]

An expression is terms joined by `` + `` or `` - `` (spaces around the operator, since model
names may contain ``-``); a term is ``[WEIGHT*]MODEL[:LABEL]``. ``MODEL`` alone is the model's
reward (normalised when the request asks for it); ``MODEL:LABEL`` is the probability of LABEL.
On the command line: ``--composite 'safe_hh=hh - 0.5*toxicity:toxic'`` (repeatable); in the
environment: ``REWARDSERVE_COMPOSITES='safe_hh=hh - 0.5*toxicity:toxic,other=...'``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_OPERATOR = re.compile(r"\s+([+-])\s+")
_TERM_KEYS = {"model", "weight", "label"}


@dataclass(frozen=True)
class CompositeTerm:
    """``weight`` x (``model``'s reward, or the probability of ``label`` when it is set)."""

    model: str
    weight: float = 1.0
    label: str = ""

    def describe(self) -> str:
        """This term as it reads in an expression, without its sign: ``0.5*toxicity:toxic``."""
        what = f"{self.model}:{self.label}" if self.label else self.model
        return what if abs(self.weight) == 1.0 else f"{abs(self.weight):g}*{what}"


@dataclass(frozen=True)
class CompositeSpec:
    """A named recipe: the total reward is the sum of its terms.

    Example::

        spec = CompositeSpec.parse("safe_hh", "hh - 0.5*toxicity:toxic")
        spec.terms  # (CompositeTerm('hh', 1.0, ''), CompositeTerm('toxicity', -0.5, 'toxic'))
    """

    name: str
    terms: tuple[CompositeTerm, ...]

    @property
    def models(self) -> tuple[str, ...]:
        """The distinct models the recipe uses, in order of first use."""
        return tuple(dict.fromkeys(t.model for t in self.terms))

    def describe(self) -> str:
        """The recipe as an expression: ``hh - 0.5*toxicity:toxic``."""
        out = []
        for i, t in enumerate(self.terms):
            if i or t.weight < 0:
                out.append("-" if t.weight < 0 else "+")
            out.append(t.describe())
        return " ".join(out)

    @classmethod
    def parse(cls, name: str, value: Any) -> CompositeSpec:
        """Build a recipe from an expression or a list of ``{model, weight, label}`` tables."""
        name = str(name).strip()
        if not name:
            raise ValueError("composites: a recipe needs a name")
        where = f"composites: recipe {name!r}"
        if isinstance(value, CompositeSpec):
            return value
        if isinstance(value, str):
            terms = _parse_expression(value, where)
        elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            terms = tuple(_parse_table(t, f"{where}: term {i}") for i, t in enumerate(value))
        else:
            raise ValueError(f"{where}: expected an expression or a list of {{model, weight, label}} tables, "
                             f"got {type(value).__name__}")
        if not terms:
            raise ValueError(f"{where}: no terms")
        return cls(name, terms)


def parse_composites(value: Any) -> tuple[CompositeSpec, ...]:
    """Parse ``{name: recipe}`` (TOML/JSON), ``["NAME=EXPR", ...]`` (flags) or ``"NAME=EXPR,..."`` (env)."""
    if isinstance(value, Mapping):
        return tuple(CompositeSpec.parse(k, v) for k, v in value.items())
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    out = []
    for v in value:
        if isinstance(v, CompositeSpec):
            out.append(v)
            continue
        name, sep, expr = str(v).partition("=")
        if not sep:
            raise ValueError(f"composites: expected NAME=EXPRESSION, got {v!r}")
        out.append(CompositeSpec.parse(name, expr))
    return tuple(out)


def _parse_expression(text: str, where: str) -> tuple[CompositeTerm, ...]:
    text = text.strip()
    if not text:
        return ()
    sign = 1.0
    if text[0] in "+-":  # a leading sign belongs to the first term
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:].strip()
    parts = _OPERATOR.split(text)  # [term, op, term, op, term, ...]
    terms = [_parse_term(parts[0], sign, where)]
    for op, term in zip(parts[1::2], parts[2::2], strict=True):
        terms.append(_parse_term(term, -1.0 if op == "-" else 1.0, where))
    return tuple(terms)


def _parse_term(text: str, sign: float, where: str) -> CompositeTerm:
    bad = ValueError(f"{where}: term {text.strip()!r}: expected [WEIGHT*]MODEL[:LABEL] "
                     "with a number as WEIGHT and spaces around the + and - between terms")
    coef, star, what = text.strip().rpartition("*")
    try:
        weight = float(coef) if star else 1.0
    except ValueError:
        raise bad from None
    model, _, label = (s.strip() for s in what.partition(":"))
    if not model or any(c.isspace() for c in model + label):
        raise bad
    return _term(model, sign * weight, label, where)


def _parse_table(t: Any, where: str) -> CompositeTerm:
    if not isinstance(t, Mapping) or "model" not in t:
        raise ValueError(f"{where}: expected a table with 'model' (and optional 'weight', 'label')")
    unknown = sorted(set(t) - _TERM_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(_TERM_KEYS)})")
    try:
        weight = float(t.get("weight", 1.0))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: weight {t.get('weight')!r} is not a number") from None
    return _term(str(t["model"]), weight, str(t.get("label", "") or ""), where)


def _term(model: str, weight: float, label: str, where: str) -> CompositeTerm:
    if not math.isfinite(weight):
        raise ValueError(f"{where}: weight of {model!r} must be finite, got {weight}")
    return CompositeTerm(model, weight, label)


def check_recipes(recipes: Sequence[CompositeSpec], models: Sequence[str]) -> None:
    """Raise ValueError naming the recipe whose name clashes or that uses an unknown model."""
    seen: set[str] = set()
    for r in recipes:
        where = f"composites: recipe {r.name!r}"
        if r.name in models:
            raise ValueError(f"{where}: name clashes with a served model; rename the recipe")
        if r.name in seen:
            raise ValueError(f"{where}: defined twice")
        seen.add(r.name)
        for t in r.terms:
            if t.model not in models:
                raise ValueError(f"{where}: unknown model {t.model!r} (served models: {list(models)}; "
                                 "recipes cannot use other recipes)")
