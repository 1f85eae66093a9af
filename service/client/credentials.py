"""Client side of TLS and bearer tokens: the channel to open and the metadata to send.

TLS is on when any ``tls_*`` file is given: ``tls_ca_file`` is the CA that signed the server's
certificate (default: the system's roots), ``tls_cert_file`` + ``tls_key_file`` the client's
own certificate for servers that require mutual TLS. The token goes in every call's
``authorization: Bearer <token>`` metadata.

Example::

    channel = open_channel("127.0.0.1:50051", (), tls_ca_file="ca.crt")
    stub.Score(request, metadata=bearer_metadata(os.environ["REWARDSERVE_AUTH_TOKEN"]))
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from rewardserve.service.credential_files import read_pem, read_token_file

TOKEN_ENV = "REWARDSERVE_AUTH_TOKEN"


def channel_credentials(tls_ca_file: str | None = None, tls_cert_file: str | None = None,
                        tls_key_file: str | None = None) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files, or None (plaintext) when no file is given."""
    if tls_ca_file is None and tls_cert_file is None and tls_key_file is None:
        return None
    if (tls_cert_file is None) != (tls_key_file is None):
        raise ValueError("tls_cert_file and tls_key_file (the client certificate) must be given together")
    ca = None if tls_ca_file is None else read_pem("tls_ca_file", tls_ca_file, "certificate")
    cert = None if tls_cert_file is None else read_pem("tls_cert_file", tls_cert_file, "certificate")
    key = None if tls_key_file is None else read_pem("tls_key_file", tls_key_file, "key")
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def open_channel(target: str, options: Sequence[tuple[str, object]], *, aio: bool = False,
                 tls_ca_file: str | None = None, tls_cert_file: str | None = None,
                 tls_key_file: str | None = None):
    """A ``grpc`` (or ``grpc.aio`` with ``aio=True``) channel, over TLS when a TLS file is given."""
    credentials = channel_credentials(tls_ca_file, tls_cert_file, tls_key_file)
    module = grpc.aio if aio else grpc
    if credentials is None:
        return module.insecure_channel(target, options=list(options))
    return module.secure_channel(target, credentials, options=list(options))


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """The call metadata carrying ``token`` (None without a token)."""
    if not token:
        return None
    token = token.strip()
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("token: must be printable ASCII without spaces")
    return (("authorization", f"Bearer {token}"),)


def read_token(path: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """The client's token: the first token line of ``path``, else ``REWARDSERVE_AUTH_TOKEN``'s first."""
    if path is not None:
        return read_token_file("token file", path)[0]
    value = (env or {}).get(TOKEN_ENV, "")
    tokens = [t.strip() for t in value.split(",") if t.strip()]
    return tokens[0] if tokens else None
