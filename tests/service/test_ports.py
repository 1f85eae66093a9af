"""Ports in use are refused before a server listens on any, with a message naming the setting."""

from __future__ import annotations

import socket

import pytest
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge.ports import PortInUse
from rewardserve.service.edge.processes import serve_processes

from rewardserve.cli import main


@pytest.fixture
def busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


@pytest.mark.parametrize("setting", ["port", "http_port"])
def test_a_single_server_refuses_its_own_ports_in_use_before_listening(setting, busy_port, bundles):
    # Before: gRPC's own "cannot listen", or aiohttp's bind error after gRPC had started.
    ports = {"port": 0, "http_port": None, setting: busy_port}
    config = ServiceConfig(models=(ModelSource("pairwise", str(bundles["pairwise"])),), host="127.0.0.1",
                           metrics_port=None, processes=1, **ports)
    with pytest.raises(PortInUse, match=rf"{setting} 127.0.0.1:{busy_port} is in use"):
        serve_processes(config)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_serve_on_a_port_in_use_is_a_cli_error_not_a_traceback(processes, busy_port, bundles, capsys):
    code = main(["serve", "--model", f"pairwise={bundles['pairwise']}", "--host", "127.0.0.1",
                 "--port", str(busy_port), "--metrics-port", "0", "--processes", processes])
    assert code == 2
    assert f"rewardserve serve: error: port 127.0.0.1:{busy_port} is in use" in capsys.readouterr().err
