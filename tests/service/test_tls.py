"""TLS settings are checked at startup: each bad file fails with a message naming it."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from rewardserve.service.client.credentials import channel_credentials
from rewardserve.service.config import ModelSource, ServiceConfig
from rewardserve.service.edge.tls import ServerTLS

from rewardserve.cli import main

from .pki import PKI, encrypted_key, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def config(**tls) -> ServiceConfig:
    return ServiceConfig(models=(ModelSource("m", "/nonexistent"),), port=0, metrics_port=None, **tls)


def load_error(**tls) -> str:
    with pytest.raises(ValueError) as e:
        ServerTLS.load(config(**tls))
    return str(e.value)


def test_off_without_a_certificate():
    assert ServerTLS.load(config()) is None


def test_loads_server_and_client_ca(pki):
    tls = ServerTLS.load(config(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key))
    assert not tls.mutual and tls.ssl_context.verify_mode == ssl.CERT_NONE
    tls = ServerTLS.load(config(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key,
                                tls_client_ca_file=pki.ca.cert))
    assert tls.mutual and tls.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_missing_file_fails_the_start_through_the_cli(pki, tmp_path, capsys):
    missing = tmp_path / "missing.crt"
    code = main(["serve", "--model", "m=/nonexistent", "--port", "0", "--metrics-port", "off",
                 "--tls-cert-file", str(missing), "--tls-key-file", pki.server.key])
    assert code == 2
    assert f"rewardserve serve: error: tls_cert_file {missing}: file not found" in capsys.readouterr().err


def test_key_that_does_not_match_the_certificate(pki):
    message = load_error(tls_cert_file=pki.server.cert, tls_key_file=pki.client.key)
    assert message == (f"tls_key_file {pki.client.key}: does not match tls_cert_file {pki.server.cert} "
                       "(the key is not the certificate's private key)")


def test_files_that_are_not_what_they_should_be(pki, tmp_path):
    assert load_error(tls_cert_file=pki.server.key, tls_key_file=pki.server.key) == (
        f"tls_cert_file {pki.server.key}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line)")
    assert load_error(tls_cert_file=pki.server.cert, tls_key_file=pki.server.cert).startswith(
        f"tls_key_file {pki.server.cert}: not a PEM private key")
    assert load_error(tls_cert_file=str(tmp_path), tls_key_file=pki.server.key) == (
        f"tls_cert_file {tmp_path}: is a directory, expected a PEM file")
    missing_ca = str(tmp_path / "ca.pem")
    assert load_error(tls_cert_file=pki.server.cert, tls_key_file=pki.server.key,
                      tls_client_ca_file=missing_ca) == f"tls_client_ca_file {missing_ca}: file not found"


def test_encrypted_key_is_refused_without_a_prompt(pki, tmp_path):
    key = encrypted_key(tmp_path)
    assert load_error(tls_cert_file=pki.server.cert, tls_key_file=key).startswith(
        f"tls_key_file {key}: the private key is encrypted")


def test_corrupt_certificate(pki, tmp_path):
    bad = tmp_path / "bad.crt"
    text = Path(pki.server.cert).read_text().splitlines()
    bad.write_text("\n".join([text[0], "bm90IGEgY2VydGlmaWNhdGU=", text[-1]]) + "\n")
    assert load_error(tls_cert_file=str(bad), tls_key_file=pki.server.key).startswith(
        f"tls_cert_file {bad} / tls_key_file {pki.server.key}: cannot load")


def test_config_rules():
    with pytest.raises(ValueError, match="tls_cert_file and tls_key_file must be set together"):
        config(tls_cert_file="/x.crt")
    with pytest.raises(ValueError, match=r"tls_client_ca_file \(mutual TLS\) needs tls_cert_file and tls_key_file"):
        config(tls_client_ca_file="/ca.crt")
    assert config(tls_cert_file="", tls_key_file="").tls_cert_file is None  # empty env values: off


def test_client_credentials(pki, tmp_path):
    assert channel_credentials() is None
    assert channel_credentials(pki.ca.cert, pki.client.cert, pki.client.key) is not None
    with pytest.raises(ValueError, match="must be given together"):
        channel_credentials(pki.ca.cert, tls_cert_file=pki.client.cert)
    with pytest.raises(ValueError, match=f"tls_ca_file {tmp_path / 'no.crt'}: file not found"):
        channel_credentials(str(tmp_path / "no.crt"))
