"""TLS, mutual TLS and bearer tokens, end to end, over gRPC and HTTP (/metrics, /get_reward).

One server with mutual TLS and two accepted tokens (rotation); certificates are made at run
time (tests/service/pki.py). Each refusal is checked next to a call that succeeds with the same
server, so a test cannot pass because the server is simply unreachable.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from rewardserve.service.client.client import (
    AsyncRewardClient,
    RetryPolicy,
    RewardClient,
    RewardServiceError,
    score_request,
)
from rewardserve.service.client.credentials import bearer_metadata, open_channel

from rewardserve.cli import main
from rewardserve.kserve import grpc_predict_v2_pb2 as kserve_pb
from rewardserve.kserve import grpc_predict_v2_pb2_grpc as kserve_grpc

from .conftest import ServerThread, make_config
from .pki import PKI, make_pki

pytestmark = pytest.mark.e2e

TOKEN, OLD_TOKEN, ENV_TOKEN = "t0k3n-current-0123456789", "t0k3n-previous-0123456789", "t0k3n-from-env-0123456789"
NO_RETRY = RetryPolicy(attempts=1)
TEXT = "\n\nHuman: hi\n\nAssistant: hello!"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure(bundles, pki, tmp_path_factory):
    """A server with mutual TLS; tokens from a file (two, for rotation) and from the environment."""
    token_file = tmp_path_factory.mktemp("tokens") / "tokens"
    token_file.write_text(f"# rotation: the new token first, the old one until every client moved\n{TOKEN}\n"
                          f"{OLD_TOKEN}\n")
    config = make_config(bundles, names=("pairwise",), tls_cert_file=pki.server.cert, tls_key_file=pki.server.key,
                         tls_client_ca_file=pki.ca.cert, auth_token_file=str(token_file), auth_token=ENV_TOKEN,
                         http_port=0)
    s = ServerThread(config)
    yield s
    s.stop()


def client_for(server, pki: PKI, *, ca="ca", cert="client", token=TOKEN) -> RewardClient:
    """A client trusting CA ``ca`` (None: plaintext), with client certificate ``cert`` (None: none)."""
    ca_file = {"ca": pki.ca.cert, "other_ca": pki.other_ca.cert, None: None}[ca]
    pair = {"client": pki.client, "stranger": pki.stranger, None: None}[cert]
    return RewardClient(server.target, timeout_s=5, retry=NO_RETRY, tls_ca_file=ca_file,
                        tls_cert_file=pair and pair.cert, tls_key_file=pair and pair.key, token=token)


def refusal(server, pki: PKI, **kwargs) -> RewardServiceError:
    with client_for(server, pki, **kwargs) as client, pytest.raises(RewardServiceError) as e:
        client.score([TEXT])
    return e.value


# ------------------------------------------------------------------ gRPC
def test_good_client_with_certificate_and_token(secure, pki):
    with client_for(secure, pki) as client:
        result = client.score([TEXT, ("Hi", "Hello!")])
        assert result.model == "pairwise" and len(result.scores) == 2
        assert client.list_models().default == "pairwise"


@pytest.mark.parametrize("token", [OLD_TOKEN, ENV_TOKEN])
def test_every_configured_token_is_accepted(secure, pki, token):
    with client_for(secure, pki, token=token) as client:
        assert len(client.score([TEXT]).scores) == 1


async def test_async_client_and_stream_carry_the_token(secure, pki):
    async with AsyncRewardClient(secure.target, timeout_s=5, tls_ca_file=pki.ca.cert, tls_cert_file=pki.client.cert,
                                 tls_key_file=pki.client.key, token=TOKEN) as client:
        assert len((await client.score([TEXT])).scores) == 1
        results = [r async for r in client.score_stream([score_request([TEXT], request_id="a")])]
        assert [r.request_id for r in results] == ["a"]


def test_client_without_certificate_is_refused(secure, pki):
    e = refusal(secure, pki, cert=None)
    assert e.code == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails: no RPC at all


def test_client_with_certificate_from_another_ca_is_refused(secure, pki):
    e = refusal(secure, pki, cert="stranger")
    assert e.code == grpc.StatusCode.UNAVAILABLE


def test_client_that_does_not_trust_the_server_is_refused(secure, pki):
    e = refusal(secure, pki, ca="other_ca")  # the server's certificate is not signed by this CA
    assert e.code == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(secure, pki):
    e = refusal(secure, pki, ca=None, cert=None)
    assert e.code == grpc.StatusCode.UNAVAILABLE


def test_no_token_is_unauthenticated(secure, pki):
    e = refusal(secure, pki, token=None)
    assert (e.code, e.details) == (grpc.StatusCode.UNAUTHENTICATED, "missing 'authorization: Bearer <token>'")


@pytest.mark.parametrize("token", ["wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]])
def test_wrong_token_is_unauthenticated(secure, pki, token):
    e = refusal(secure, pki, token=token)
    assert (e.code, e.details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token")


def test_wrong_scheme_is_unauthenticated(secure, pki):
    with open_channel(secure.target, (), tls_ca_file=pki.ca.cert, tls_cert_file=pki.client.cert,
                      tls_key_file=pki.client.key) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as e:
            list(reflect.ServerReflectionInfo(iter([request]), metadata=(("authorization", f"Basic {TOKEN}"),)))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert e.value.details() == "authorization must be 'Bearer <token>'"
        # health stays open (Kubernetes probes send no token); TLS still applies
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_kserve_service_needs_the_token_too(secure, pki):
    with open_channel(secure.target, (), tls_ca_file=pki.ca.cert, tls_cert_file=pki.client.cert,
                      tls_key_file=pki.client.key) as channel:
        kserve = kserve_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            kserve.ModelMetadata(kserve_pb.ModelMetadataRequest(name="pairwise"), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = kserve.ModelMetadata(kserve_pb.ModelMetadataRequest(name="pairwise"), timeout=5,
                                     metadata=bearer_metadata(TOKEN))
        assert reply.name == "pairwise"


def test_reflection_needs_the_token(secure, pki):
    with open_channel(secure.target, (), tls_ca_file=pki.ca.cert, tls_cert_file=pki.client.cert,
                      tls_key_file=pki.client.key) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as e:
            list(reflect.ServerReflectionInfo(iter([request])))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (reply,) = reflect.ServerReflectionInfo(iter([request]), metadata=bearer_metadata(TOKEN))
        assert "rewardserve.v1.RewardService" in {s.name for s in reply.list_services_response.service}


# ------------------------------------------------------------------ HTTP /metrics and /get_reward
def https_get(url: str, pki: PKI, *, cert="client", token: str | None = TOKEN,
              json_body: dict | None = None) -> tuple[int, dict, str]:
    """GET (or POST ``json_body``) over HTTPS with the client certificate ``cert``."""
    context = ssl.create_default_context(cafile=pki.ca.cert)
    pair = {"client": pki.client, "stranger": pki.stranger, None: None}[cert]
    if pair is not None:
        context.load_cert_chain(pair.cert, pair.key)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def metrics_url(server) -> str:
    return f"https://127.0.0.1:{server.server.metrics_port}/metrics"


def reward_url(server, path: str = "/get_reward") -> str:
    return f"https://127.0.0.1:{server.server.http_port}{path}"


OPENRLHF = {"query": [TEXT], "prompts": ["\n\nHuman: hi"], "labels": [""]}


def test_get_reward_over_https_with_certificate_and_token(secure, pki):
    status, _, body = https_get(reward_url(secure), pki, json_body=OPENRLHF)
    assert status == 200 and len(json.loads(body)["rewards"]) == 1
    with client_for(secure, pki) as client:  # the same score as over gRPC
        assert json.loads(body)["rewards"][0] == pytest.approx(client.score([TEXT]).scores[0].reward, abs=1e-5)


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_get_reward_without_a_good_token_is_401(secure, pki, token):
    status, headers, body = https_get(reward_url(secure), pki, token=token, json_body=OPENRLHF)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(body)["error"] in ("missing 'authorization: Bearer <token>'", "invalid bearer token")


@pytest.mark.parametrize("cert", [None, "stranger"])
def test_get_reward_without_a_good_certificate_fails_the_handshake(secure, pki, cert):
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as e:
        https_get(reward_url(secure), pki, cert=cert, json_body=OPENRLHF)
    if isinstance(e.value, urllib.error.URLError):
        assert isinstance(e.value.reason, (ssl.SSLError, ConnectionError)), e.value


def test_http_health_needs_no_token(secure, pki):
    status, _, body = https_get(reward_url(secure, "/health"), pki, token=None)
    assert status == 200 and json.loads(body)["status"] == "SERVING"


def test_metrics_over_https_with_certificate_and_token(secure, pki):
    status, _, text = https_get(metrics_url(secure), pki)
    assert status == 200 and "rewardserve_requests_total" in text


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_metrics_without_a_good_token_is_401(secure, pki, token):
    status, headers, body = https_get(metrics_url(secure), pki, token=token)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert "token" in body and "rewardserve_" not in body


@pytest.mark.parametrize("cert", [None, "stranger"])
def test_metrics_without_a_good_certificate_fails_the_handshake(secure, pki, cert):
    # TLS 1.3: the server checks the client's certificate after the client's handshake ends, so
    # the client sees an alert or a closed connection when it reads the response.
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)) as e:
        https_get(metrics_url(secure), pki, cert=cert)
    if isinstance(e.value, urllib.error.URLError):
        assert isinstance(e.value.reason, (ssl.SSLError, ConnectionError)), e.value


def test_plain_http_to_metrics_is_refused(secure):
    with pytest.raises(ConnectionError):  # the server expects a TLS ClientHello and hangs up
        urllib.request.urlopen(f"http://127.0.0.1:{secure.server.metrics_port}/metrics", timeout=5).read()


def test_refusals_are_counted(secure, pki):
    refusal(secure, pki, token="wrong-token-0123456789")
    _, _, text = https_get(metrics_url(secure), pki)
    line = next(x for x in text.splitlines()
                if x.startswith('rewardserve_requests_rejected_total{protocol="grpc",reason="unauthenticated"}'))
    assert float(line.split()[-1]) >= 1


# ------------------------------------------------------------------ CLI clients
def test_health_cli_with_tls_flags(secure, pki, capsys):
    flags = ["--address", secure.target, "--tls-ca-file", pki.ca.cert,
             "--tls-cert-file", pki.client.cert, "--tls-key-file", pki.client.key]
    assert main(["health", *flags]) == 0
    assert capsys.readouterr().out.strip().endswith("SERVING")
    assert main(["health", "--address", secure.target, "--timeout-s", "2"]) == 1  # plaintext: refused


def test_score_cli_with_token_file_or_env(secure, pki, tmp_path, capsys, monkeypatch):
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "hello"}\n{"prompt": "Hi", "response": "Hello!"}\n')
    token_file = tmp_path / "token"
    token_file.write_text(OLD_TOKEN + "\n")
    tls = ["--tls-ca-file", pki.ca.cert, "--tls-cert-file", pki.client.cert, "--tls-key-file", pki.client.key]
    out = tmp_path / "out.jsonl"
    assert main(["score", str(items), "--server", secure.target, *tls, "--token-file", str(token_file),
                 "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    monkeypatch.setenv("REWARDSERVE_AUTH_TOKEN", TOKEN)
    assert main(["score", str(items), "--server", secure.target, *tls, "-o", str(out)]) == 0
    monkeypatch.delenv("REWARDSERVE_AUTH_TOKEN")
    capsys.readouterr()
    assert main(["score", str(items), "--server", secure.target, *tls, "-o", str(out)]) == 2
    assert "UNAUTHENTICATED: missing 'authorization: Bearer <token>'" in capsys.readouterr().err
