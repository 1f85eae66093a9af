"""Reading the files that settings name: PEM certificates and keys, bearer-token files.

Server (TLS, ``auth_token_file``) and client (``--tls-*-file``, ``--token-file``) read them the
same way, so a file that one side accepts the other does too; errors name the setting, the
file and the problem (never the token).
"""

from __future__ import annotations

from pathlib import Path

CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
KEY_MARKER = b"PRIVATE KEY-----"


def read_setting_file(setting: str, path: str, expected: str = "a PEM file") -> bytes:
    """Read a file a setting names; ValueError names the setting, the file and the problem."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{setting} {path}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{setting} {path}: is a directory, expected {expected}") from None
    except OSError as e:
        raise ValueError(f"{setting} {path}: cannot read ({e.strerror})") from None


def read_pem(setting: str, path: str, kind: str) -> bytes:
    """Read a PEM file (``kind``: certificate or key); errors name the setting and the file."""
    data = read_setting_file(setting, path)
    if kind == "certificate" and CERT_MARKER not in data:
        raise ValueError(f"{setting} {path}: not a PEM certificate (no '{CERT_MARKER.decode()}' line)")
    if kind == "key":
        if KEY_MARKER not in data:
            raise ValueError(f"{setting} {path}: not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' line)")
        if b"ENCRYPTED" in data:  # gRPC cannot take a passphrase
            raise ValueError(f"{setting} {path}: the private key is encrypted; give an unencrypted key "
                             "(e.g. openssl pkey -in KEY -out KEY.plain) and protect it with file permissions")
    return data


def read_token_file(setting: str, path: str) -> list[str]:
    """The tokens of a file, one a line ('#' starts a comment); errors name the setting, file and line."""
    try:
        text = read_setting_file(setting, path, "a text file").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{setting} {path}: not a UTF-8 text file") from None
    tokens = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            check_token(line, f"{setting} {path}: line {lineno}")
            tokens.append(line)
    if not tokens:
        raise ValueError(f"{setting} {path}: holds no token (one per line; '#' starts a comment)")
    return tokens


def check_token(token: str, where: str) -> None:
    """Raise ValueError unless the token can travel in a header (the message never quotes it)."""
    # Tokens travel in HTTP headers and gRPC metadata: printable ASCII, no spaces. The message
    # never quotes the token.
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError(f"{where}: a token must be printable ASCII without spaces")
