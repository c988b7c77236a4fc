"""Certificates for the TLS tests, made with ``cryptography``: one CA, leaf certificates for 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class CA:
    """A certificate authority issuing server and client certificates, each with its own serial."""

    def __init__(self, name: str = "secretcache test CA") -> None:
        self.key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, *, client: bool = False) -> tuple[str, str, int]:
        """(certificate PEM, private key PEM, serial) for ``common_name`` (SAN 127.0.0.1 and localhost)."""
        key = _key()
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = x509.random_serial_number()
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key), serial

    def secret(self, common_name: str, *, client: bool = False) -> tuple[str, int]:
        """A TLS secret's JSON (certificate, private_key, ca) and the certificate's serial."""
        cert, key, serial = self.issue(common_name, client=client)
        return json.dumps({"certificate": cert, "private_key": key, "ca": self.pem}), serial


def serial_of(der: bytes | None) -> int:
    assert der is not None, "no certificate"
    return x509.load_der_x509_certificate(der).serial_number


def trusting(ca: CA) -> ssl.SSLContext:
    """A plain client context trusting ``ca`` only."""
    return ssl.create_default_context(cadata=ca.pem)
