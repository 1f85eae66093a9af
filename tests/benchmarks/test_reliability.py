"""The reliability suite's fast subset: every scenario runs against tiny models and must pass.

One run (module fixture) of ``python -m rewardserve.benchmarks.reliability --quick``'s code: a 128-client
soak, cancellation and expiry inside one batch, overload, SIGTERM under load, an injected
runner failure, every kind of broken bundle under fail and skip, and 10,000 property-based
bad requests (gRPC and the HTTP routes). Each test below asserts one scenario's checks and its key figures.
"""

from __future__ import annotations

import json

import pytest
from rewardserve.benchmarks.reliability.__main__ import parse
from rewardserve.benchmarks.reliability.config import ReliabilityConfig
from rewardserve.benchmarks.reliability.report import table
from rewardserve.benchmarks.reliability.run import run_suite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def results(tiny, tmp_path_factory):
    """The quick suite on the tiny pairwise bundle and a tiny classifier it builds itself."""
    root = tmp_path_factory.mktemp("reliability")
    config = ReliabilityConfig.quick(out=root / "out", work_dir=root / "work", pairwise=tiny["onnx"])
    return run_suite(config), config


def section(results, name: str) -> dict:
    res, _ = results
    [s] = [s for s in res["sections"] if s["name"] == name]
    failed = [f"{c['name']}: {c['detail']}" for c in s["checks"] if not c["ok"] and c["gated"]]
    assert s["ok"], failed
    return s["figures"]


def test_soak_loses_and_misroutes_nothing(results):
    f = section(results, "soak")
    assert f["clients"] == 128 and f["lost"] == 0 and f["misrouted"] == 0 and not f["failed_by_code"]
    assert f["answered"] == f["sent"] > 500 and 0 < f["streamed"] < f["sent"]
    assert f["rss_growth_mib"] <= 64


def test_cancelled_and_expired_items_are_not_run(results):
    f = section(results, "cancellation")
    assert f["items_run"] == f["items_live"] == 8 and f["items_dropped"] == 12
    assert f["codes"] == {"OK": 4, "CANCELLED": 3, "DEADLINE_EXCEEDED": 3}


def test_overload_rejects_promptly_and_recovers(results):
    f = section(results, "overload")
    # Rejection latency and recovery are timings: the full run gates them, the test only reports.
    assert f["overload"]["rejected"] > 0 and f["recovery_ratio"] > 0


def test_sigterm_answers_accepted_and_exits_0(results):
    f = section(results, "SIGTERM under load")
    assert f["exit_code"] == 0 and f["answered_in_flight_at_signal"] > 0
    assert f["server_score_calls"]["OK"] == f["by_outcome"]["answered"]


def test_injected_failure_fails_only_its_batch(results):
    f = section(results, "injected runner failure")
    assert 0 < f["requests_internal"] < 8 and f["later_ok"] == 8


def test_every_bad_model_kind_under_fail_and_skip(results):
    f = section(results, "bad models")
    assert len(f["kinds"]) == 8 and f["skip_all_broken_exit"] == 2
    assert all(k["fail: exit"] == 2 and k["skip: GetModel"] == "NOT_FOUND" for k in f["kinds"].values())


def test_ten_thousand_bad_requests_get_documented_answers(results):
    f = section(results, "bad input")
    assert f["requests_sent"] >= 10_000
    assert set(f["by_code"]) <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
    assert f["by_code"]["OK"] > 1000 and f["by_code"]["INVALID_ARGUMENT"] > 1000
    # The HTTP routes (vLLM, SGLang, TEI, OpenRLHF) get about one call in ten: documented statuses only.
    assert set(f["http_by_status"]) <= {"200", "400", "404", "413", "429", "503"}
    assert sum(f["http_by_status"].values()) > 500 and {"200", "400", "404", "413"} <= set(f["http_by_status"])


def test_one_table_and_the_result_files(results):
    res, config = results
    text = table(res)
    for name in ("soak", "cancellation", "overload", "SIGTERM under load", "injected runner failure", "bad models",
                 "bad input"):
        assert f"\n{name} " in text
    assert "lost / misrouted" in text and "RESOURCE_EXHAUSTED latency" in text
    assert json.loads((config.out / "results.json").read_text())["ok"] is res["ok"]
    assert "| soak | load |" in (config.out / "results.md").read_text()


def test_config_flags_and_validation(tmp_path):
    config = parse(["--quick", "--soak-duration-s", "12", "--out", str(tmp_path)])
    assert config.soak_duration_s == 12.0 and config.overload_phase_s == 1.2 and config.out == tmp_path
    assert parse([]).soak_duration_s == 180.0 and parse([]).bad_models_subprocess is True
    with pytest.raises(ValueError, match="soak_warmup_s"):
        ReliabilityConfig(soak_duration_s=5, soak_warmup_s=10)
    with pytest.raises(ValueError, match="soak_clients must be > 0"):
        ReliabilityConfig(soak_clients=0)
