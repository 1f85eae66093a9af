"""deploy/prometheus: promtool accepts the files, and the real Prometheus scrapes a running rewardserve.

Prometheus runs with the deploy file's ``rewardserve`` job (aimed at the test server, 1 s
interval) and its alert rules; the test reads the scraped series back through the HTTP API.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import DEPLOY, MODEL, prometheus_binary

pytestmark = pytest.mark.e2e


def test_promtool_accepts_the_config_and_rules():
    prometheus_binary()  # the same fail/skip rule: promtool ships in the same package
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing although prometheus is installed"
    done = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout  # the alert rules were checked too


def test_prometheus_scrapes_the_rewardserve_series(scraped, traffic):
    up = scraped.query('up{job="rewardserve"}')["data"]["result"]
    assert [r["value"][1] for r in up] == ["1"]
    instance = up[0]["metric"]["instance"]

    def value(expr: str) -> float | None:
        return scraped.scalar(expr)

    assert value('sum(rewardserve_requests_total{method="Score", code="OK"})') == traffic["score_ok"]
    assert value('sum(rewardserve_requests_total{method="Score", code="NOT_FOUND"})') == traffic["not_found"]
    assert value(f'rewardserve_items_total{{model="{MODEL}"}}') == traffic["items"]
    assert value('rewardserve_requests_rejected_total{protocol="grpc", reason="unauthenticated"}') == traffic[
        "unauthenticated"]
    assert value(f'sum(rewardserve_items_dropped_total{{model="{MODEL}"}})') == traffic["dropped"]
    # Every scored item waited in the queue once; batches ran and were observed.
    assert value(f'rewardserve_queue_wait_seconds_count{{model="{MODEL}"}}') == traffic["items"]
    assert value(f'rewardserve_batch_size_sum{{model="{MODEL}"}}') == traffic["items"]
    assert value(f'rewardserve_tokens_total{{model="{MODEL}"}}') > traffic["items"]
    info = scraped.query("rewardserve_model_info")["data"]["result"]
    assert [(r["metric"]["model"], r["metric"]["precision"], r["metric"]["instance"]) for r in info] == [
        (MODEL, "fp32", instance)]
    names = set(scraped.api("label/__name__/values")["data"])
    assert {"rewardserve_requests_total", "rewardserve_request_latency_seconds_bucket",
            "rewardserve_queue_depth", "rewardserve_padding_efficiency_bucket"} <= names


def test_alert_rules_load_and_evaluate_cleanly(scraped):
    groups = scraped.api("rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules} == {"RewardserveDown", "RewardserveErrors", "RewardserveSlowScore",
                                         "RewardserveQueueBacklog", "RewardserveItemsDropped"}
    for r in rules:  # evaluated at least once against the scraped series, without an error
        assert r["health"] == "ok", (r["name"], r.get("lastError"))
        assert r["lastEvaluation"] != "0001-01-01T00:00:00Z", r["name"]
