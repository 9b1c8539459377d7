"""Certificates and private keys as PEM text: read, checked against each other and against
domains, and written back in the one form the store keeps and HAProxy loads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from shipyard.shared.exceptions import InvalidInput

# The key types HAProxy serves (and ACME CAs certify).
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertificateFacts:
    """What the store records of a certificate chain besides the chain itself."""

    chain_pem: str  # leaf first, each certificate re-encoded (no text around them)
    fingerprint: str  # SHA-256 of the leaf's DER, hex
    issuer: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]  # the leaf's DNS names (subjectAltName), lowercase


def read_chain(text: str) -> list[x509.Certificate]:
    """The certificates of a PEM chain, in order; InvalidInput if there is none."""
    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        chain = []
    if not chain:
        raise InvalidInput("the certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    for position, certificate in enumerate(chain, start=1):
        try:  # parsed only when first read: a malformed extension or key raises here
            _ = certificate.extensions, certificate.public_key()
        except (
            ValueError,
            UnsupportedAlgorithm,
            x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType,
        ) as exc:
            raise InvalidInput(
                f"certificate {position} of the chain does not parse: {type(exc).__name__}"
            ) from None
    return chain


def read_key(text: str) -> PrivateKey:
    """The private key of a PEM file (PKCS#8, PKCS#1 or SEC 1); InvalidInput otherwise. The
    key's text never appears in a message."""
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except TypeError:
        raise InvalidInput("the key is encrypted: give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput("the key is not a PEM private key (PKCS#8, PKCS#1 or SEC 1)") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidInput("the key must be an RSA or ECDSA key")
    return key


def facts(chain: list[x509.Certificate]) -> CertificateFacts:
    """What the store keeps of `chain` (leaf first)."""
    leaf = chain[0]
    return CertificateFacts(
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        issuer=leaf.issuer.rfc4514_string()[:1024],
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        names=dns_names(leaf),
    )


def key_matches(certificate: x509.Certificate, key: PrivateKey) -> bool:
    """Whether `key` is the private half of the certificate's public key."""
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        certificate.public_key().public_bytes(*public) == key.public_key().public_bytes(*public)
    )


def dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The DNS names a certificate is valid for: its subjectAltName (browsers read no other)."""
    try:
        extension = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        )
    except x509.ExtensionNotFound:
        return ()
    names = extension.value.get_values_for_type(x509.DNSName)  # type: ignore[attr-defined]
    return tuple(str(name).lower().rstrip(".") for name in names)


def covers(name: str, domain: str) -> bool:
    """Whether a certificate name covers `domain`: equal, or `*.` standing for one label."""
    if name.startswith("*."):
        label, dot, rest = domain.partition(".")
        return bool(label) and bool(dot) and rest == name[2:]
    return name == domain


def key_pem(key: PrivateKey) -> str:
    """`key` as unencrypted PKCS#8 PEM: what HAProxy loads, after the chain (encrypt it before
    it is stored)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh key for a certificate order: ECDSA P-256, the cheapest handshakes."""
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: PrivateKey, domain: str) -> bytes:
    """A certificate signing request for `domain` (its subjectAltName, as ACME CAs read)."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)
