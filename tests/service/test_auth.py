"""Tokens: where they come from, how they are checked; binding beyond loopback warns."""

from __future__ import annotations

import logging

import pytest
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge.auth import Guard, load_tokens
from rewardserve.service.edge.security import Security, is_loopback
from rewardserve.service.edge.status import CallLimit
from rewardserve.service.edge.tls import ServerTLS
from rewardserve.service.errors import Overloaded, Unauthenticated
from rewardserve.service.metrics import ServiceMetrics

from rewardserve.cli import build_parser

from .pki import make_pki

SECRET = "s3cret-token-0123456789"


def config(**values) -> ServiceConfig:
    return ServiceConfig(models=(ModelSource("m", "/nonexistent"),), port=0, metrics_port=None, **values)


def test_tokens_from_file_and_env(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n\n  {SECRET}  \nsecond-token-0123456789\n{SECRET}\n")
    cfg = config(auth_token_file=str(path), auth_token="env-one-0123456789, env-two-0123456789")
    assert load_tokens(cfg) == ("env-one-0123456789", "env-two-0123456789", SECRET, "second-token-0123456789")
    assert load_tokens(config()) == ()


def test_token_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=f"auth_token_file {tmp_path / 'none'}: file not found"):
        load_tokens(config(auth_token_file=str(tmp_path / "none")))
    empty = tmp_path / "empty"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(ValueError, match=r"auth_token_file .*empty: holds no token"):
        load_tokens(config(auth_token_file=str(empty)))
    spaced = tmp_path / "spaced"
    spaced.write_text(f"{SECRET}\nmy secret\n")
    with pytest.raises(ValueError) as e:
        load_tokens(config(auth_token_file=str(spaced)))
    assert str(e.value) == f"auth_token_file {spaced}: line 2: a token must be printable ASCII without spaces"
    assert "secret" not in str(e.value).replace(str(spaced), "")  # the message never quotes a token


def test_token_comes_from_env_never_a_flag_and_is_not_printed():
    cfg = ServiceConfig.from_sources({"models": ["m=/x"]}, {"REWARDSERVE_AUTH_TOKEN": SECRET})
    assert cfg.auth_token == SECRET and SECRET not in repr(cfg)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--auth-token", SECRET])
    args = build_parser().parse_args(["serve", "--auth-token-file", "/run/secrets/tokens"])
    assert args.auth_token_file == "/run/secrets/tokens"


def test_guard_checks_the_authorization_value():
    metrics = ServiceMetrics()
    guard = Guard([SECRET, "other-token-0123456789"], CallLimit(1, metrics), metrics)
    for good in (f"Bearer {SECRET}", f"bearer {SECRET}", "Bearer other-token-0123456789"):
        guard.authenticate("grpc", good)
    for bad, message in [(None, "missing 'authorization: Bearer <token>'"),
                         (f"Basic {SECRET}", "authorization must be 'Bearer <token>'"),
                         ("Bearer ", "authorization must be 'Bearer <token>'"),
                         ("Bearer wrong", "invalid bearer token"),
                         (f"Bearer {SECRET}é", "invalid bearer token")]:
        with pytest.raises(Unauthenticated, match=message):
            guard.authenticate("http", bad)
    assert guard.metrics.rejected.labels("http", "unauthenticated")._value.get() == 5


def test_guard_without_tokens_lets_everyone_in_but_still_limits():
    metrics = ServiceMetrics()
    guard = Guard([], CallLimit(1, metrics), metrics)
    guard.authenticate("grpc", None)
    guard.limit.acquire("grpc")
    with pytest.raises(Overloaded, match=r"at most 1 \(max_concurrent_requests\)"):
        guard.limit.acquire("grpc")
    guard.limit.release()
    guard.limit.acquire("grpc")


def test_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "10.1.2.3", "example.org"]))


def test_binding_beyond_loopback_warns_without_tls_or_tokens(tmp_path, caplog):
    pki = make_pki(tmp_path)
    tls = ServerTLS.load(config(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key))
    plain = Security(None, Guard([], CallLimit(8, ServiceMetrics()), ServiceMetrics()), 1024)
    tokens_only = Security(None, Guard([SECRET], CallLimit(8, ServiceMetrics()), ServiceMetrics()), 1024)
    both = Security(tls, Guard([SECRET], CallLimit(8, ServiceMetrics()), ServiceMetrics()), 1024)
    with caplog.at_level(logging.WARNING, logger="rewardserve.service.edge.security"):
        plain.warn_if_exposed("gRPC", "127.0.0.1", 50051)
        both.warn_if_exposed("gRPC", "0.0.0.0", 50051)
        assert caplog.records == []
        plain.warn_if_exposed("gRPC", "0.0.0.0", 50051)
        tokens_only.warn_if_exposed("/metrics", "::", 9400)
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("gRPC listens on 0.0.0.0:50051 (not loopback) without TLS or bearer tokens")
    assert second.startswith("/metrics listens on :::9400 (not loopback) without TLS:")
