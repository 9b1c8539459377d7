"""The router's HTTPS: its files, and the certificates HAProxy serves by SNI.

HAProxy starts with a self-signed default certificate (for a host name no certificate names), an
empty crt-list and empty maps of the host names redirected to HTTPS and sent HSTS. Every
certificate of an environment's domain is then loaded, swapped and removed through the admin
socket (router.runtime): a renewal takes effect at the next handshake, with no reload and no
connection dropped. Nothing is written to disk but the default certificate: a restarted router
(or HAProxy) loads them all again from the store.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from collections.abc import Container, Iterable
from pathlib import Path
from typing import Protocol

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.shared import constants
from shipyard.shared.settings import Settings

log = structlog.get_logger(__name__)

# A domain as environments hold them (shared.schemas.apps.Domain); anything else is no name of a
# certificate or a map key the runtime API may be given.
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_CERTIFICATES_FOLDER = "certs"


class Served(Protocol):
    """A certificate the router must serve (shared.services.certificates.ServedCertificate)."""

    @property
    def domain(self) -> str: ...
    @property
    def pem(self) -> str: ...  # the chain, leaf first, then the private key
    @property
    def redirect(self) -> bool: ...  # plain HTTP requests for the domain go to HTTPS
    @property
    def hsts(self) -> bool: ...  # HTTPS answers carry Strict-Transport-Security


def default_certificate(settings: Settings) -> Path:
    """The router's self-signed certificate and key, for a host name no certificate names."""
    return settings.router_dir / "default.pem"


def crt_list(settings: Settings) -> Path:
    """The HTTPS listener's crt-list: empty at start, filled through the admin socket."""
    return settings.router_dir / "certs.crtlist"


def https_map(settings: Settings) -> Path:
    """Host names whose plain HTTP requests are redirected to HTTPS (host → 1)."""
    return settings.router_dir / "https.map"


def hsts_map(settings: Settings) -> Path:
    """Host names whose HTTPS answers carry HSTS (host → max-age in seconds)."""
    return settings.router_dir / "hsts.map"


def certificate_name(settings: Settings, domain: str) -> str:
    """The name HAProxy knows a domain's certificate by: a path, though no file is there."""
    return str(settings.router_dir / _CERTIFICATES_FOLDER / f"{domain}.pem")


def write_files(settings: Settings) -> None:
    """A fresh default certificate, an empty crt-list and empty maps, before HAProxy starts."""
    for path in (crt_list(settings), https_map(settings), hsts_map(settings)):
        path.write_text("")
    _write_private(default_certificate(settings), _self_signed(settings.host_name))


def _self_signed(host: str) -> bytes:
    """A self-signed certificate (P-256) and its key, PEM: what a TLS client that asks for a
    name nobody serves gets, and rightly distrusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Shipyard router on {host}")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=constants.ROUTER_DEFAULT_CERTIFICATE_DAYS))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner reads (mode 0600, never readable in between)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    tmp.replace(path)


class RouterCertificates:
    """The certificates one HAProxy serves, made to match what the store serves."""

    def __init__(self, settings: Settings, api: RuntimeAPI | None = None) -> None:
        self.settings = settings
        self.api = api or RuntimeAPI(settings.router_socket)
        # Domain → digest of the PEM this HAProxy was given: a certificate is loaded again only
        # when it changed (a renewal, an upload), or when HAProxy no longer has it (restarted).
        self._loaded: dict[str, str] = {}
        # Domain → digest of a PEM HAProxy refused: tried again at each pass, said once.
        self._refused: dict[str, str] = {}

    def apply(self, served: Iterable[Served]) -> list[str]:
        """Load what is new or changed, point the redirect and HSTS maps at what is loaded, and
        remove what is no longer served: what changed, e.g. `certificate web.example.com`."""
        wanted = {}
        for certificate in served:
            if _DOMAIN.match(certificate.domain):
                wanted[certificate.domain] = certificate
            else:
                log.warning("router.certificate_skipped", domain=certificate.domain)
        store = self.api.certificates()
        for name in store.pending:  # a change a failed pass began: it would take the next one's
            self.api.abort_certificate(name)
        listed = self.api.crt_list(crt_list(self.settings))
        self._loaded = {
            domain: digest
            for domain, digest in self._loaded.items()
            if certificate_name(self.settings, domain) in listed
        }
        changed = [
            f"certificate {domain}"
            for domain, certificate in sorted(wanted.items())
            if self._load(certificate, store.loaded, listed)
        ]
        # Only a domain whose certificate is loaded is redirected to HTTPS, or promised HSTS.
        serving = {domain: wanted[domain] for domain in self._loaded if domain in wanted}
        redirected = {domain: "1" for domain, served in serving.items() if served.redirect}
        max_age = str(constants.ROUTER_HSTS_MAX_AGE_SECONDS)
        strict = {domain: max_age for domain, served in serving.items() if served.hsts}
        changed += [f"redirect {d}" for d in self.api.set_map(https_map(self.settings), redirected)]
        changed += [f"hsts {d}" for d in self.api.set_map(hsts_map(self.settings), strict)]
        for domain in sorted(self._domains(store.loaded | set(listed)) - set(wanted)):
            if self._remove(domain, listed):
                changed.append(f"certificate {domain} removed")
        if changed:
            log.info("router.certificates_synced", changed=changed)
        return changed

    def _load(self, certificate: Served, loaded: frozenset[str], listed: Container[str]) -> bool:
        """Load one certificate if HAProxy lacks it as it is now; whether it was loaded. A
        refused one is logged, and tried again at the next pass (an older one serves on)."""
        digest = hashlib.sha256(certificate.pem.encode()).hexdigest()
        if self._loaded.get(certificate.domain) == digest:
            return False
        name = certificate_name(self.settings, certificate.domain)
        try:
            self.api.put_certificate(name, certificate.pem, new=name not in loaded)
            if name not in listed:
                self.api.add_to_crt_list(crt_list(self.settings), name, certificate.domain)
        except RouterError as exc:
            if self._refused.get(certificate.domain) != digest:
                log.warning(
                    "router.certificate_refused", domain=certificate.domain, error=exc.message
                )
                self._refused[certificate.domain] = digest
            return False
        self._loaded[certificate.domain] = digest
        self._refused.pop(certificate.domain, None)
        return True

    def _remove(self, domain: str, listed: Container[str]) -> bool:
        """Stop serving a domain's certificate and forget it; whether that worked (a refusal is
        logged, and tried again at the next pass)."""
        name = certificate_name(self.settings, domain)
        self._loaded.pop(domain, None)
        try:
            if name in listed:
                self.api.remove_from_crt_list(crt_list(self.settings), name)
            self.api.remove_certificate(name)
        except RouterError as exc:
            log.warning("router.certificate_not_removed", domain=domain, error=exc.message)
            return False
        return True

    def _domains(self, names: Iterable[str]) -> set[str]:
        """The domains of the certificates among `names` that this router loaded (not the
        default one)."""
        folder = str(self.settings.router_dir / _CERTIFICATES_FOLDER) + "/"
        return {
            name.removeprefix(folder).removesuffix(".pem")
            for name in names
            if name.startswith(folder) and name.endswith(".pem")
        }
