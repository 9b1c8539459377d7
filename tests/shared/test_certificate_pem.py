"""PEM certificates and keys: names a certificate covers, keys refused, the form stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from shipyard.shared import certificate_pem
from shipyard.shared.exceptions import InvalidInput
from tests.certificate_support import TestCA


@pytest.mark.parametrize(
    ("name", "domain", "covered"),
    [
        ("www.example.com", "www.example.com", True),
        ("www.example.com", "example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("*.example.com", "wwwexample.com", False),
    ],
)
def test_a_name_covers_its_domain_and_a_wildcard_one_label(
    name: str, domain: str, covered: bool
) -> None:
    assert certificate_pem.covers(name, domain) is covered


def test_an_encrypted_key_is_refused_with_what_to_do() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()

    with pytest.raises(InvalidInput, match="the key is encrypted: give it without a passphrase"):
        certificate_pem.read_key(encrypted)


def test_a_key_haproxy_cannot_serve_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    with pytest.raises(InvalidInput, match="the key must be an RSA or ECDSA key"):
        certificate_pem.read_key(pem)


def test_the_stored_chain_is_the_certificates_alone_leaf_first() -> None:
    ca = TestCA()
    issued = ca.issue("www.example.com", "api.example.com")

    facts = certificate_pem.facts(certificate_pem.read_chain("comment\n" + issued.chain))

    assert facts.chain_pem == issued.chain
    assert facts.names == ("www.example.com", "api.example.com")
    assert facts.issuer == "CN=Shipyard Test CA"
    key = certificate_pem.read_key(issued.key)
    assert certificate_pem.key_pem(key).startswith("-----BEGIN PRIVATE KEY-----")


def test_a_signing_request_names_the_domain() -> None:
    from cryptography import x509

    request = x509.load_pem_x509_csr(
        certificate_pem.csr_pem(certificate_pem.new_key(), "www.example.com")
    )

    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert request.is_signature_valid


def test_a_certificate_with_a_malformed_extension_is_refused_not_a_crash() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    now = datetime.now(UTC)
    broken = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        # A subjectAltName whose content is a NULL: the file parses, the extension does not.
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x05\x00"),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    text = broken.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(InvalidInput, match="certificate 1 of the chain does not parse"):
        certificate_pem.read_chain(text)


def test_a_subject_alt_name_of_a_kind_not_supported_is_refused_not_a_crash() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    now = datetime.now(UTC)
    # subjectAltName = one EDIPartyName (partyName "x"): valid DER, a kind cryptography refuses.
    edi_party = bytes.fromhex("3007A505A1030C0178")
    broken = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, edi_party),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    text = broken.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(InvalidInput, match="certificate 1 of the chain does not parse"):
        certificate_pem.read_chain(text)
