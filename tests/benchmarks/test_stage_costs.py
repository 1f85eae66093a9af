"""The stage-cost table: what each stage of the Score path adds to the one before."""

from __future__ import annotations

from rewardserve.benchmarks.stage_costs import STAGES, table


def test_table_gives_each_stage_its_increment_over_the_previous():
    rows = {"noop": {"items_per_s": 3000.0, "cpu_us_per_request": 270.0, "mean_batch": None, "errors": 0},
            "edge": {"items_per_s": 2900.0, "cpu_us_per_request": 335.0, "mean_batch": None, "errors": 0},
            "full": {"items_per_s": 800.0, "cpu_us_per_request": 1500.0, "mean_batch": 1.42, "errors": 2}}
    lines = table(rows).splitlines()
    assert lines[2] == "| noop | 3000 | 270 |  | - | 0 |"
    assert lines[3] == "| edge | 2900 | 335 | +65 | - | 0 |"
    assert lines[4] == "| full | 800 | 1500 | +1165 | 1.42 | 2 |"
    assert STAGES[-1] == "full"  # the last stage is the server as it ships
