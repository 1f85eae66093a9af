"""deploy/grafana: the dashboard is importable and every query uses series the server really exports.

Each PromQL expression (panels, template variables and the Prometheus alert rules) is checked
twice: its metric and label names against the live ``/metrics`` of a server that has served
traffic, and the expression itself against the real Prometheus, which must parse it and return
data.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .conftest import DEPLOY, TOKEN, fetch
from .promql import uses

pytestmark = pytest.mark.e2e

DASHBOARD = DEPLOY / "grafana" / "rewardserve-dashboard.json"
# Labels Prometheus adds to every scraped series (target labels), and its synthetic ``up``.
TARGET_LABELS = {"job", "instance"}
SYNTHETIC_SERIES = {"up"}
# What Grafana puts in place of its variables when it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".+", "$model": ".+"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
SUFFIX = re.compile(r"_(total|created|bucket|sum|count|info)$")
# What the issue asks the dashboard to show, as the metric families that carry it.
REQUIRED_FAMILIES = {
    "rewardserve_requests",  # request rate and errors by code
    "rewardserve_request_latency_seconds",  # latency percentiles
    "rewardserve_queue_wait_seconds", "rewardserve_batch_size", "rewardserve_padding_efficiency",
    "rewardserve_queue_depth", "rewardserve_tokens",  # tokens/s
    "rewardserve_requests_rejected",  # calls refused before a service (tokens, overload)
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_targets() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p.get("targets", [])]


def variable_queries() -> list[tuple[str, str]]:
    """(variable name, query) of the dashboard's query variables."""
    out = []
    for v in dashboard()["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((v["name"], q))
    return out


def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rewardserve-alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def exported_series(metrics_text: str) -> dict[str, set[str]]:
    """Sample name -> label names, from a /metrics page (prometheus-client's own parser)."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_dashboard_is_an_importable_grafana_dashboard():
    d = dashboard()
    assert d["title"] and d["uid"] and isinstance(d["schemaVersion"], int) and "id" not in d
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = {p["title"] for p in d["panels"]}
    for wanted in ("Requests / s by method and code", "Errors / s by code", "Latency percentiles by method",
                   "Queue wait", "Batch size", "Padding efficiency", "Queue depth", "Tokens / s"):
        assert wanted in titles
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["w"] <= 24 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        # Every query goes to the data source the user picks when importing.
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]


# First in the file: Prometheus starts before the server's bundle is exported, so its first
# scrape (about 5 s after start) overlaps the export.
@pytest.mark.parametrize("kind", ["panels", "variables", "alerts"])
def test_every_query_parses_and_returns_data_in_prometheus(scraped, kind):
    if kind == "panels":
        expressions = panel_targets()
    elif kind == "alerts":
        # Thresholds would filter the healthy test server out: evaluate the left-hand side.
        expressions = [(n, re.split(r"\s(?:==|>|<)\s", e.strip())[0]) for n, e in alert_expressions()]
    else:
        expressions = [(n, m["selector"]) for n, q in variable_queries() if (m := LABEL_VALUES.match(q))]
    assert expressions
    for title, expr in expressions:
        reply = scraped.query(substitute(expr))
        assert reply["status"] == "success", f"{title}: Prometheus rejects {expr!r}: {reply.get('error')}"
        # The traffic touched every series the queries read (an error, a dropped item included).
        assert reply["data"]["result"], f"{title}: no data for {expr!r} after the test traffic"


def test_every_query_uses_only_exported_metrics_and_labels(deploy_server, traffic):
    series = exported_series(fetch(deploy_server.metrics_url, token=TOKEN))
    expressions = panel_targets() + alert_expressions()
    for name, query in variable_queries():
        m = LABEL_VALUES.match(query)
        assert m, f"variable {name}: expected label_values(SELECTOR, LABEL), got {query!r}"
        expressions.append((f"${name}", m["selector"]))
        expressions.append((f"${name}", f'sum by ({m["label"]}) ({m["selector"]})'))
    used_families = set()
    for title, expr in expressions:
        metrics, labels = uses(substitute(expr))
        assert metrics, f"{title}: no metric in {expr!r}"
        for metric in metrics - SYNTHETIC_SERIES:
            assert metric in series, f"{title}: {metric} is not exported (exported: {sorted(series)})"
            used_families.add(SUFFIX.sub("", metric))
        known = set().union(*(series.get(m, set()) for m in metrics)) | TARGET_LABELS
        assert labels <= known, f"{title}: labels {sorted(labels - known)} not on {sorted(metrics)}"
    assert used_families >= REQUIRED_FAMILIES, f"not shown: {REQUIRED_FAMILIES - used_families}"


def test_variables_list_the_test_server(scraped):
    instance = scraped.query('up{job="rewardserve"}')["data"]["result"][0]["metric"]["instance"]
    for name, query in variable_queries():
        m = LABEL_VALUES.match(substitute(query))
        values = scraped.api(f"label/{m['label']}/values", **{"match[]": m["selector"]})["data"]
        expected = {"instance": [instance], "model": ["classifier"]}[name]
        assert values == expected, (name, values)
