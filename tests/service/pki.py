"""Throwaway certificates for the TLS tests, made at run time with ``cryptography``.

``make_pki(dir)`` writes PEM files: ``ca`` (the trusted CA), ``server`` (127.0.0.1 and
localhost, signed by ca), ``client`` (signed by ca), ``other-ca`` (an unrelated CA) and
``stranger`` (a client certificate signed by other-ca: the "wrong certificate").
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pair:
    """A certificate file and its key file."""

    cert: str
    key: str


@dataclass(frozen=True)
class PKI:
    """The written files (paths as strings, ready for ServiceConfig)."""

    ca: Pair
    other_ca: Pair
    server: Pair
    client: Pair
    stranger: Pair


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALID))


def _ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False)
    cert = (_builder(common_name, _name(common_name), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common_name: str, ca, server: bool):
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_builder(common_name, ca_cert.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, name: str, cert, key) -> Pair:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Pair(str(cert_path), str(key_path))


def make_pki(directory: Path) -> PKI:
    """Write a CA, a server and a client certificate, and an unrelated CA with its client."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = _ca("rewardserve test CA"), _ca("unrelated test CA")
    return PKI(
        ca=_write(directory, "ca", *ca),
        other_ca=_write(directory, "other-ca", *other),
        server=_write(directory, "server", *_leaf("localhost", ca, server=True)),
        client=_write(directory, "client", *_leaf("trainer", ca, server=False)),
        stranger=_write(directory, "stranger", *_leaf("trainer", other, server=False)),
    )


def encrypted_key(directory: Path) -> str:
    """A passphrase-protected private key file (the server must refuse it clearly)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = directory / "encrypted.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))
    return str(path)
