"""Fixtures for the deploy/ tests: a rewardserve with a tiny model, traffic, and the real Prometheus.

The server requires a bearer token (as a deployment exposed beyond loopback should), so
Prometheus scrapes ``/metrics`` with one, the way deploy/README.md says to configure it.

The Prometheus server comes from the Debian package ``prometheus`` (scripts/setup.sh installs it).
Without the binary the tests that need it FAIL, so CI cannot pass without it; set
``REWARDSERVE_SKIP_PROMETHEUS=1`` to skip them on a machine where you cannot install it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rewardserve.service.client import RewardClient, RewardServiceError

from rewardserve.enums import Precision
from rewardserve.v1 import reward_pb2, reward_pb2_grpc
from tests.conftest import REPO
from tests.service.conftest import ServerThread, _export, make_config

DEPLOY = REPO / "deploy"
SKIP_ENV = "REWARDSERVE_SKIP_PROMETHEUS"
MODEL = "classifier"
# Traffic the tests send, so they can expect exact counts.
OK_REQUESTS, ITEMS_PER_REQUEST = 6, 3
# An item waits up to MAX_WAIT_MS for its batch to fill: long enough for a 50 ms client deadline
# or the REQUEST_TIMEOUT_S of a call without one to pass while it is queued (a dropped item).
MAX_WAIT_MS, REQUEST_TIMEOUT_S = 300.0, 0.1
TOKEN = "deploy-test-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5.0, token: str | None = None) -> str:
    """GET a URL and return the body (HTTP errors too: Prometheus explains them in JSON)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


@dataclass
class Prometheus:
    """A running Prometheus: its base URL and HTTP API."""

    url: str
    process: subprocess.Popen
    log: Path

    def api(self, path: str, **params) -> dict:
        """Call ``/api/v1/<path>`` and return the decoded JSON (errors included)."""
        query = urllib.parse.urlencode(params, doseq=True)
        return json.loads(fetch(f"{self.url}/api/v1/{path}?{query}"))

    def query(self, expr: str) -> dict:
        """Evaluate an instant query now."""
        return self.api("query", query=expr)

    def scalar(self, expr: str) -> float | None:
        """The value of a query returning one series, None when it returns none."""
        result = self.query(expr)
        assert result["status"] == "success", f"{expr}: {result}"
        rows = result["data"]["result"]
        return float(rows[0]["value"][1]) if rows else None

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


def prometheus_binary() -> str:
    """Path of the prometheus binary, or fail (skip only when REWARDSERVE_SKIP_PROMETHEUS=1)."""
    found = shutil.which("prometheus")
    if found:
        return found
    message = ("the prometheus binary is not installed: `apt-get install --no-install-recommends prometheus` "
               "(scripts/setup.sh does it)")
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{message}; skipped because {SKIP_ENV}=1")
    pytest.fail(f"{message}, or set {SKIP_ENV}=1 to skip these tests locally")


def prometheus_test_config(metrics_address: str, token_file: Path) -> dict:
    """deploy/prometheus/prometheus.yml with its static job aimed at the test server, scraping every 1 s.

    The job, its path, the alert rules file and everything else come from the deploy file; the
    token is added as deploy/README.md documents; the DNS job (Kubernetes) is left out: it
    cannot resolve here.
    """
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "rewardserve")
    job["static_configs"] = [{"targets": [metrics_address]}]
    job["authorization"] = {"credentials_file": str(token_file)}
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / f) for f in config.get("rule_files", [])]
    config["scrape_configs"] = [job]
    return config



@pytest.fixture(scope="session")
def metrics_port() -> int:
    """The metrics port of the test server, chosen before both it and Prometheus start."""
    return free_port()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, metrics_port) -> Prometheus:
    """The real Prometheus on loopback, scraping the test server's metrics port every second."""
    binary = prometheus_binary()
    root = tmp_path_factory.mktemp("prometheus")
    config_file = root / "prometheus.yml"
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    config_file.write_text(yaml.safe_dump(prometheus_test_config(f"127.0.0.1:{metrics_port}", token_file)))
    port = free_port()
    log = root / "prometheus.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        def ready():
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{prom.log_tail()}")
            try:
                return fetch(f"{prom.url}/-/ready", timeout=1).strip().lower().startswith("prometheus")
            except OSError:
                return False

        wait_until(ready, 30, "prometheus /-/ready")
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def deploy_server(tmp_path_factory, metrics_port):
    """A rewardserve with one tiny classifier on free ports (metrics on ``metrics_port``), token required."""
    root = tmp_path_factory.mktemp("deploy-onnx")
    bundle = _export(root, MODEL, "bert", "classifier", (Precision.fp32,))
    server = ServerThread(make_config({MODEL: bundle}, names=(MODEL,), metrics_port=metrics_port,
                                      max_wait_ms=MAX_WAIT_MS, request_timeout_s=REQUEST_TIMEOUT_S,
                                      auth_token=TOKEN))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def traffic(deploy_server) -> dict[str, int]:
    """Send known traffic: OK Score requests (concurrent), a NOT_FOUND, two items dropped past their
    deadline, a call without a token.

    Returns the exact counts the metrics must show.
    """
    with RewardClient(deploy_server.target, timeout_s=30, token=TOKEN) as client:
        def one(i: int):
            client.score([f"text {i} {j} " * (j + 1) for j in range(ITEMS_PER_REQUEST)], model=MODEL)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(OK_REQUESTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with pytest.raises(RewardServiceError) as e:
            client.score(["x"], model="no-such-model")
        assert e.value.code.name == "NOT_FOUND"
        # Its 50 ms deadline passes while the item waits for a batch: the caller gives up.
        with pytest.raises(RewardServiceError):
            client.score(["late"], model=MODEL, timeout_s=0.05)
        client.list_models()
        client.get_model(MODEL)
    # A call without a deadline gets the server's REQUEST_TIMEOUT_S, which passes in the queue.
    request = reward_pb2.ScoreRequest(items=[reward_pb2.Item(text="x")])
    with grpc.insecure_channel(deploy_server.target) as channel:
        stub = reward_pb2_grpc.RewardServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.Score(request, metadata=AUTH)
        assert e.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as e:  # no token: refused before the service
            stub.Score(request, timeout=10)
        assert e.value.code() is grpc.StatusCode.UNAUTHENTICATED

    def dropped() -> bool:  # counted when the batcher next looks at its queue
        families = text_string_to_metric_families(fetch(deploy_server.metrics_url, token=TOKEN))
        return sum(x.value for f in families for x in f.samples if x.name == "rewardserve_items_dropped_total") == 2

    wait_until(dropped, 10, "the two late items to be counted as dropped")
    return {"score_ok": OK_REQUESTS, "items": OK_REQUESTS * ITEMS_PER_REQUEST, "not_found": 1, "dropped": 2,
            "unauthenticated": 1}


@pytest.fixture(scope="session")
def scraped(prometheus, deploy_server, traffic) -> Prometheus:
    """Prometheus once it holds the traffic's counts and at least 3 samples of every series."""
    ok = 'sum(rewardserve_requests_total{job="rewardserve", method="Score", code="OK"})'
    wait_until(lambda: prometheus.scalar(ok) == traffic["score_ok"], 30,
               f"{ok} == {traffic['score_ok']} in Prometheus (log:\n{prometheus.log_tail()})")
    # rate() needs two samples in its window; three leave a margin.
    every = '{__name__=~"rewardserve_.+", job="rewardserve"}[1m]'

    def fewest_samples() -> int:
        series = prometheus.query(every)["data"]["result"]  # a range vector: every sample of every series
        return min((len(s["values"]) for s in series), default=0)

    wait_until(lambda: fewest_samples() >= 3, 20, "3 samples of every rewardserve series")
    return prometheus
