"""The HTTP auth middleware's refusals (401, 429) have the error body every HTTP error has."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .conftest import ServerThread, make_config

pytestmark = pytest.mark.e2e
TOKEN = "a-test-token-of-32-characters-xx"


def post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps({"query": ["hi"]}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_401_and_429_bodies_carry_error_and_code(bundles):
    server = ServerThread(make_config(bundles, names=("classifier",), http_port=0, auth_token=TOKEN,
                                      max_concurrent_requests=1))
    url = f"http://127.0.0.1:{server.server.http_port}/get_reward"
    try:
        status, body = post(url, {})
        assert status == 401 and body["code"] == "UNAUTHENTICATED" and "authorization" in body["error"]
        server.server.security.guard.limit.acquire("test")  # the one call allowed is in progress
        try:
            status, body = post(url, {"Authorization": f"Bearer {TOKEN}"})
        finally:
            server.server.security.guard.limit.release()
        assert status == 429 and body["code"] == "RESOURCE_EXHAUSTED" and "max_concurrent_requests" in body["error"]
    finally:
        server.stop()
