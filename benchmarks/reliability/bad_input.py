"""Bad input, property-based: thousands of generated requests against a real server.

Hypothesis generates each example as ``batch`` calls sent at once: Score, Compare, GetModel,
ListModels and ScoreStream with random Unicode (NUL, controls, BOM, combining marks, emoji),
very long and empty texts, huge item counts, unknown models, raw enum values, malformed chat
messages, unknown option fields, and raw bytes on the wire: garbage, and otherwise valid
requests holding invalid UTF-8 (lone surrogates; protobuf refuses to encode those, so they go
out as bytes). One call in :data:`HTTP_SHARE` goes to an HTTP route instead (vLLM ``/classify``,
``/v1/classify``, SGLang ``/v1/embeddings``, TEI ``/predict``, OpenRLHF ``/get_reward``: see
:mod:`~rewardserve.benchmarks.reliability.bad_http`). Every answer must be a success of the right
shape or a documented status (:data:`ALLOWED`; HTTP: ``bad_http.ALLOWED``), never UNKNOWN,
INTERNAL, a 500 or a timeout; afterwards health is still SERVING and a good request still gets
its solo score. Fixed seeds: the same examples every run.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import resource
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import grpc
import hypothesis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rewardserve.benchmarks.reliability import bad_http
from rewardserve.benchmarks.reliability.bad_requests import Call, strategies
from rewardserve.benchmarks.reliability.common import Section, SoloScorer, cli_server
from rewardserve.benchmarks.server_proc import free_port

from rewardserve.v1 import reward_pb2 as pb

# The answers service/errors.py documents for bad input; anything else (UNKNOWN, INTERNAL, a timeout) is a bug.
ALLOWED = ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED")
HTTP_ALLOWED = tuple(f"HTTP {s}" for s in bad_http.ALLOWED)
TIMEOUT_S = 60.0
HTTP_SHARE = 5  # one generated call in HTTP_SHARE picks an HTTP route (drawing favours the first choice: ~1 in 10)


def _callables(channel: grpc.Channel) -> dict:
    """One multi-callable per method (making one costs as much as a call); None serializers: raw bytes."""
    out = {m: channel.unary_unary(f"/rewardserve.v1.RewardService/{m}", None, None)
           for m in ("Score", "Compare", "GetModel", "ListModels")}
    out["ScoreStream"] = channel.stream_stream("/rewardserve.v1.RewardService/ScoreStream", None, None)
    return out


@st.composite
def _mixed(draw, grpc_calls, http_calls) -> Call:
    """One HTTP call in HTTP_SHARE (st.one_of would flatten both and weight every branch alike)."""
    return draw(http_calls if draw(st.sampled_from((False,) * (HTTP_SHARE - 1) + (True,))) else grpc_calls)


def _send(callables: dict, call: Call):
    if call.method.startswith("POST "):
        return callables["http"].submit(bad_http.post, callables["http_url"], call, TIMEOUT_S)
    if call.method == "ScoreStream":
        return callables[call.method](iter(call.payload), timeout=TIMEOUT_S)
    return callables[call.method].future(call.payload, timeout=TIMEOUT_S)


def _outcome(call: Call, pending) -> tuple[str, str]:
    """The status code name and, for a success of the wrong shape, what is wrong."""
    if call.method.startswith("POST "):
        try:
            return bad_http.outcome(call, *pending.result())
        except Exception as e:  # a timeout, a dropped connection
            return "HTTP NO ANSWER", f"{type(e).__name__}: {e}"
    try:
        result = list(pending) if call.method == "ScoreStream" else pending.result()
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""
    if call.method == "Score" and call.expect_items is not None:
        r = pb.ScoreResponse.FromString(result)
        if len(r.scores) != call.expect_items or r.request_id != (call.request_id or ""):
            return "WRONG_SHAPE", f"{len(r.scores)} scores for {call.expect_items} items"
        if not all(math.isfinite(x) for s in r.scores for x in (*s.logits, s.reward)):
            return "WRONG_SHAPE", "non-finite score"
    if call.method == "Compare" and len(pb.CompareResponse.FromString(result).comparisons) != call.expect_items:
        return "WRONG_SHAPE", "comparisons do not match pairs"
    if call.method == "ScoreStream" and len(result) != len(call.payload):
        return "WRONG_SHAPE", f"{len(result)} responses to {len(call.payload)} requests"
    return "OK", ""


def run_property(target: str, requests: int, batch: int, seed: int = 0,
                 http_url: str | None = None) -> tuple[Counter, int, str]:
    """Run the property test: at least ``requests`` calls, ``batch`` per example.

    Returns the answers by (kind, code), the requests sent, and the failure ("" if none): on a
    violation, hypothesis shrinks the example and its report names the smallest failing calls.
    A fixed ``seed`` and no example database: the same examples every run.
    """
    codes: Counter = Counter()
    sent = 0
    examples = math.ceil(requests / batch)

    calls = strategies() if http_url is None else _mixed(strategies(), bad_http.strategies())

    @hypothesis.seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(calls, min_size=batch, max_size=batch))
    def every_answer_is_documented(calls: list[Call]) -> None:
        nonlocal sent
        pending = [_send(callables, c) for c in calls]
        sent += sum(len(c.payload) if c.method == "ScoreStream" else 1 for c in calls)
        for call, p in zip(calls, pending, strict=True):
            code, detail = _outcome(call, p)
            codes[(call.kind, code)] += 1
            assert code in ALLOWED + HTTP_ALLOWED, f"{call.kind} via {call.method}: {code} {detail!r}"

    # The calling process may hold millions of long-lived objects (torch, in a test session): keep the
    # cyclic collector from rescanning them over and over while hypothesis allocates.
    gc.freeze()
    failure = ""
    try:
        with grpc.insecure_channel(target) as channel, ThreadPoolExecutor(batch) as http:
            callables = _callables(channel) | {"http": http, "http_url": http_url}
            every_answer_is_documented()
    except Exception as e:  # the (shrunk) falsifying example
        failure = f"{type(e).__name__}: {e}"
    finally:
        gc.unfreeze()
    return codes, sent, failure


def run_parallel(target: str, requests: int, batch: int, workers: int,
                 http_url: str | None = None) -> tuple[Counter, int, str]:
    """:func:`run_property` in ``workers`` processes with seeds 0, 1, ...: one generates while another waits.

    The work alternates between generating calls (this side) and answering them (the server);
    with two generators the server always has calls to answer.
    """
    if workers == 1:
        return run_property(target, requests, batch, 0, http_url)
    share = math.ceil(requests / workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(run_property, [target] * workers, [share] * workers, [batch] * workers,
                              range(workers), [http_url] * workers))
    codes = sum((c for c, _, _ in parts), Counter())
    return codes, sum(n for _, n, _ in parts), "; ".join(f for _, _, f in parts if f)


def _own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (the generating processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bad_input(models, scorer: SoloScorer, requests: int, batch: int, tol: float, log_dir: Path,
              workers: int = 2) -> Section:
    """Run :func:`run_property` against a ``rewardserve serve`` process; check it still serves correctly.

    A separate process, so a crash shows (the process is gone) and the server works on the
    other core while this one generates requests.
    """
    section = Section("bad input")
    http_port = free_port()
    server = cli_server("bad-input", models, log_dir, metrics=False, precision="fp32", provider="cpu",
                        intra_op_threads=1, max_queue_items=2048, http_port=http_port)
    with server.start():
        start, cpu, server_cpu = time.perf_counter(), _own_cpu_s(), server.snapshot().cpu_s
        codes, sent, failure = run_parallel(server.target, requests, batch, workers, f"http://127.0.0.1:{http_port}")
        seconds = time.perf_counter() - start
        cpu_s = {"generators": round(_own_cpu_s() - cpu, 1), "server": round(server.snapshot().cpu_s - server_cpu, 1)}
        alive = server.proc.poll() is None
        with grpc.insecure_channel(server.target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            item = pb.Item(text="a final good request")
            score = channel.unary_unary("/rewardserve.v1.RewardService/Score", pb.ScoreRequest.SerializeToString,
                                        pb.ScoreResponse.FromString)(
                pb.ScoreRequest(items=[item], options=pb.ScoreOptions(model="classifier")), timeout=30)
    by_code, http_by_status = Counter(), Counter()
    for (_, code), n in codes.items():
        if code.startswith("HTTP "):
            http_by_status[code.removeprefix("HTTP ")] += n
        else:
            by_code[code] += n
    section.figures.update(requests_sent=sent, seconds=round(seconds, 1), cpu_s=cpu_s, by_code=dict(by_code),
                           http_by_status=dict(http_by_status),
                           by_kind={f"{k} -> {c}": n for (k, c), n in sorted(codes.items())})
    section.check("every answer a success of the right shape or a documented code", not failure and sent > 0,
                  failure[:2000] or dict(by_code))
    section.check(f"at least {requests} requests sent", sent >= requests, sent)
    section.check("server process still running", alive)
    section.check("health still SERVING", health.status == health_pb2.HealthCheckResponse.SERVING)
    section.check("a final good request gets its solo score",
                  scorer.expect("classifier", item).matches(score.scores[0], tol))
    return section
