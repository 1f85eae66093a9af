"""``rewardserve score`` (in-process and through a server) and ``rewardserve serve`` in a torch-free subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rewardserve.service.client import RewardClient

from rewardserve.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    {"text": "Hello world", "id": "a"},
    {"prompt": "How are you?", "response": "Fine, thanks."},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    {"text": "the end " * 100},
]
FIELDS = {"line", "model", "logits", "probabilities", "reward", "num_tokens", "truncated"}


@pytest.fixture()
def items_file(tmp_path) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in LINES) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_in_process_and_via_server_agree(items_file, tmp_path, bundles, server):
    local, remote = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"
    assert main(["score", str(items_file), "-o", str(local), "--model", str(bundles["pairwise"]),
                 "--precision", "fp32", "--normalize"]) == 0
    assert main(["score", str(items_file), "-o", str(remote), "--server", server.target, "--normalize",
                 "--batch-size", "3"]) == 0
    got_local, got_remote = read_jsonl(local), read_jsonl(remote)
    assert len(got_local) == len(got_remote) == len(LINES)
    assert got_local[0]["id"] == "a" and [r["line"] for r in got_local] == [1, 2, 3, 4]
    assert got_local[3]["truncated"] and got_local[3]["num_tokens"] == 64
    for a, b in zip(got_local, got_remote, strict=True):
        assert set(a) >= FIELDS and set(b) >= FIELDS
        assert a["logits"] == pytest.approx(b["logits"], abs=1e-5)
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-5)


def test_score_names_the_bad_line(tmp_path, bundles, server, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": ""}\n')
    assert main(["score", str(bad), "--server", server.target]) == 2
    assert "line 2.text: empty" in capsys.readouterr().err
    long = tmp_path / "long.jsonl"
    long.write_text('{"text": "ok"}\n{"text": "ok"}\n' + json.dumps({"text": "word " * 200}) + "\n")
    assert main(["score", str(long), "--server", server.target, "--truncation", "error", "--batch-size", "2"]) == 2
    assert "line 3: " in capsys.readouterr().err


# A meta-path finder that makes importing torch or transformers fail, installed before anything else.
NO_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError('torch is blocked in the serving path: ' + name)
sys.meta_path.insert(0, _Block())
from rewardserve.cli import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_without_torch_then_sigterm_drains_and_exits_0(bundles, tmp_path):
    port = free_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'port = {port}\nmetrics-port = "off"\nmax-wait-ms = 300.0\nprecision = "fp32"\n'
                      f'[models]\nclf = "{bundles["classifier"]}"\n')
    env = {**os.environ, "REWARDSERVE_GRACE_PERIOD_S": "5", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", NO_TORCH, "serve", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not become SERVING"
                try:
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
            with RewardClient(f"127.0.0.1:{port}", timeout_s=20) as client:
                assert client.get_model().precision == "fp32"
                # Accepted before SIGTERM (it waits max_wait_ms in the queue), so it must complete.
                future = channel.unary_unary(
                    "/rewardserve.v1.RewardService/Score",
                    request_serializer=lambda r: r.SerializeToString(),
                    response_deserializer=lambda b: b,
                ).future(_score_request(), timeout=20)
                time.sleep(0.1)
                proc.send_signal(signal.SIGTERM)
                assert len(future.result()) > 0
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "signal received" in out and "server stopped" in out


def _score_request():
    from rewardserve.v1 import reward_pb2 as pb

    return pb.ScoreRequest(items=[pb.Item(text="drain me")])


def test_health_command(server, capsys):
    """`rewardserve health` (the container HEALTHCHECK) exits 0 on SERVING, 1 when unreachable."""
    from rewardserve.cli import main

    assert main(["health", "--address", server.target]) == 0
    assert "SERVING" in capsys.readouterr().out
    assert main(["health", "--address", "127.0.0.1:1", "--timeout-s", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err
