"""The A/B tool: its points, and its settings reaching the server's own config."""

from __future__ import annotations

import json

import pytest
from rewardserve.benchmarks.ab import main, parse_point, with_overrides
from rewardserve.benchmarks.server_proc import ServerProcess
from rewardserve.service.config import ServiceConfig


def test_points_are_closed_loops_of_n_clients_or_open_loops_at_a_rate():
    closed, opened = parse_point("256", 6.0), parse_point("open:800", 6.0)
    assert (closed.mode, closed.concurrency, closed.duration_s) == ("closed", 256, 6.0)
    assert (opened.mode, opened.rate_rps) == ("open", 800.0)


def test_overrides_reach_the_config_the_server_starts_with(tmp_path):
    # Environment variables do not reach the bench's server (it is given a ServiceConfig as JSON).
    server = ServerProcess.rewardserve(tmp_path, "auto", threads=0, max_batch_items=64, max_wait_ms=None,
                                       log_dir=tmp_path, name="ab")
    config = ServiceConfig(**json.loads(with_overrides(server, {"inline_batch_ms": 0.0}).argv[-1]))
    assert config.inline_batch_ms == 0.0 and config.max_batch_items == 64


@pytest.mark.parametrize(("argv", "message"), [
    (["--a", '{"inline_batch_ms": -1}', "--b", "{}"], "--a: inline_batch_ms must be >= 0"),
    (["--a", "{}", "--b", '{"inline_ms": 2}'], "--b: unknown setting(s) inline_ms"),
    (["--a", "[1]", "--b", "{}"], "--a: expected a JSON object of ServiceConfig settings"),
    (["--a", "{}", "--b", "{}", "--points", "256,open:fast"], "--points: '256,open:fast': expected"),
])
def test_bad_settings_and_points_are_cli_errors_before_any_server_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
