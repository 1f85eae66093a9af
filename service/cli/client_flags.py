"""The flags every client command shares: where the server is, TLS, and the bearer token.

One set of names across ``score``, ``filter`` and ``health``: ``--address`` for a server,
``--bundle DIR`` for in-process scoring, ``--model NAME`` for a served model. Old spellings
stay for one release as deprecated aliases that print a warning (:class:`DeprecatedAlias`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

ADDRESS_HELP = "the server: HOST:PORT, several comma-separated (balanced), or dns:///NAME:PORT"


class DeprecatedAlias(argparse.Action):
    """Store the value; warn when it came through one of ``old`` (an old spelling of the flag)."""

    def __init__(self, option_strings, dest, old: tuple[str, ...] = (), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.old = old

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old:
            print(f"rewardserve: warning: {option_string} is deprecated, use {self.option_strings[0]}",
                  file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_address(parser: argparse.ArgumentParser, default: str | None = None, old: tuple[str, ...] = ()) -> None:
    """``--address`` (and its deprecated spellings ``old``)."""
    parser.add_argument("--address", *old, dest="address", default=default, metavar="ADDRESS", action=DeprecatedAlias,
                        old=old, help=ADDRESS_HELP)


def add_security(parser: argparse.ArgumentParser) -> None:
    """Flags of a client of a server with TLS or tokens (the token is read from a file or env)."""
    group = parser.add_argument_group("TLS and token (when the server requires them)")
    group.add_argument("--tls-ca-file", help="PEM CA that signed the server's certificate (turns TLS on)")
    group.add_argument("--tls-cert-file", help="PEM client certificate, for mutual TLS (with --tls-key-file)")
    group.add_argument("--tls-key-file", help="PEM private key of --tls-cert-file")
    group.add_argument("--token-file", help="file whose first line is the bearer token "
                       "(default: REWARDSERVE_AUTH_TOKEN; never a flag, `ps` would show it)")


def security(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the clients for the TLS and token flags."""
    from rewardserve.service.client.credentials import read_token

    return {"tls_ca_file": args.tls_ca_file, "tls_cert_file": args.tls_cert_file,
            "tls_key_file": args.tls_key_file, "token": read_token(args.token_file, os.environ)}
