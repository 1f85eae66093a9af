"""TLS and mutual TLS of the server: credentials for gRPC and an ``ssl.SSLContext`` for HTTP.

The files are read and checked once, at startup, so that a typo fails the start with a message
naming the setting and the file (``tls_key_file /etc/rs/tls.key: does not match tls_cert_file
/etc/rs/tls.crt``), never the first client's handshake. Certificates are not reloaded: rotate
them by restarting (replicas one at a time behind a load balancer).

Example::

    tls = ServerTLS.load(config)           # None when tls_cert_file is not set
    port = server.add_secure_port("0.0.0.0:50051", tls.grpc_credentials())
    web.TCPSite(runner, "0.0.0.0", 8443, ssl_context=tls.ssl_context)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import grpc
from rewardserve.service.config import ServiceConfig
from rewardserve.service.credential_files import read_pem


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal; read_pem refuses encrypted keys first.
    raise ValueError("encrypted private keys are not supported")


@dataclass(frozen=True)
class ServerTLS:
    """The server's certificate and key, and the CA that signs client certificates (mTLS).

    ``ssl_context`` (for the HTTP endpoints) is built at load time; building it is also what
    checks that the key matches the certificate.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None
    cert: bytes
    key: bytes
    client_ca: bytes | None
    ssl_context: ssl.SSLContext

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by ``client_ca_file``."""
        return self.client_ca is not None

    @classmethod
    def load(cls, config: ServiceConfig) -> ServerTLS | None:
        """Read and check the configured files; None when TLS is off (no tls_cert_file)."""
        if config.tls_cert_file is None:
            return None
        cert = read_pem("tls_cert_file", config.tls_cert_file, "certificate")
        key = read_pem("tls_key_file", config.tls_key_file, "key")
        ca = None
        if config.tls_client_ca_file is not None:
            ca = read_pem("tls_client_ca_file", config.tls_client_ca_file, "certificate")
        context = _ssl_context(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file)
        return cls(config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file, cert, key, ca, context)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``grpc.aio.Server.add_secure_port``."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca, require_client_auth=self.mutual
        )


def _ssl_context(cert_file: str, key_file: str, client_ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e):
            raise ValueError(f"tls_key_file {key_file}: does not match tls_cert_file {cert_file} "
                             "(the key is not the certificate's private key)") from None
        raise ValueError(f"tls_cert_file {cert_file} / tls_key_file {key_file}: cannot load ({e})") from None
    if client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except ssl.SSLError as e:
            raise ValueError(f"tls_client_ca_file {client_ca_file}: cannot load the CA certificates ({e})") from None
        context.verify_mode = ssl.CERT_REQUIRED  # no certificate, or one this CA did not sign: handshake fails
    return context
