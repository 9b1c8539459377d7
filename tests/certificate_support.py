"""Certificates made on the spot for tests: a CA of the test's own, and leaves it signs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate (with its CA's after it in `chain`) and its key, all PEM."""

    cert: str
    chain: str
    key: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # SEC 1, as openssl writes EC keys
        serialization.NoEncryption(),
    ).decode()


class TestCA:
    """A self-signed CA that signs leaves for any names and validity."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, name: str = "Shipyard Test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(
        self,
        *names: str,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ips: tuple[str, ...] = (),
    ) -> Issued:
        """A leaf for the DNS `names` (and `ips`), valid from a day ago for 90 days unless told."""
        now = datetime.now(UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        alternative: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
        alternative += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=90))
        )
        if alternative:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative), critical=False
            )
        leaf = builder.sign(self.key, hashes.SHA256())
        cert = leaf.public_bytes(serialization.Encoding.PEM).decode()
        return Issued(cert=cert, chain=cert + self.pem, key=_key_pem(key))


def other_key() -> str:
    """A private key that belongs to no certificate."""
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))
