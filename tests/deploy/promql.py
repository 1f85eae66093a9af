"""Find the metric names and label names a PromQL expression uses (for checking dashboards).

Not a PromQL parser: the real Prometheus checks syntax (tests/deploy/test_grafana.py sends every
expression to it). This lexer only has to tell metric names from functions, keywords, label
names and literals, which PromQL's grammar makes easy:

* ``name(`` is a function, ``sum``/``max``/... aggregations; ``by (...)``, ``without (...)``, ``on (...)``,
  ``ignoring (...)``, ``group_left (...)``, ``group_right (...)`` list label names;
* inside ``{...}`` every identifier is a label name (values are quoted strings);
* ``[...]`` holds durations; any other identifier is a metric name.

Example::

    >>> uses('sum by (code) (rate(rewardserve_requests_total{code!="OK"}[5m]))')
    ({'rewardserve_requests_total'}, {'code'})
"""

from __future__ import annotations

import re

TOKEN = re.compile(
    r"""\s+|(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)"""
    r"""|(?P<number>\d[\w.]*)|(?P<ident>[A-Za-z_:][\w:]*)|(?P<punct>=~|!~|!=|==|<=|>=|.)""",
    re.S,
)
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Aggregations may be followed by ``by (...)`` instead of ``(``: never metric names.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile"}
KEYWORDS = LABEL_LIST_KEYWORDS | AGGREGATIONS | {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def tokens(expr: str) -> list[tuple[str, str]]:
    """Split an expression into (kind, text) tokens, dropping whitespace."""
    out = []
    for m in TOKEN.finditer(expr):
        if m.lastgroup:
            out.append((m.lastgroup, m.group()))
    return out


def uses(expr: str) -> tuple[set[str], set[str]]:
    """Return (metric names, label names) that ``expr`` refers to."""
    toks = tokens(expr)
    metrics: set[str] = set()
    labels: set[str] = set()
    braces = brackets = 0
    label_list = False  # inside the parentheses after by/without/on/...
    for i, (kind, text) in enumerate(toks):
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "punct":
            braces += {"{": 1, "}": -1}.get(text, 0)
            brackets += {"[": 1, "]": -1}.get(text, 0)
            if text == ")" and label_list:
                label_list = False
            continue
        if kind != "ident" or brackets:
            continue
        if braces or label_list:
            labels.add(text)
        elif text.lower() in LABEL_LIST_KEYWORDS:
            label_list = nxt == "("
            if not label_list and text.lower() in ("group_left", "group_right"):
                continue
        elif text.lower() in KEYWORDS or nxt == "(":
            continue  # a keyword, a function or an aggregation
        else:
            metrics.add(text)
    if braces or brackets:
        raise ValueError(f"unbalanced braces or brackets in {expr!r}")
    return metrics, labels
