"""`SHIPYARD_ARTIFACT_STORE`: `file:///dir` (a directory) or `oci://host[:port]/namespace`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# A repository path component, as the OCI distribution spec defines it.
_COMPONENT = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$")
DEFAULT_NAMESPACE = "shipyard"


@dataclass(frozen=True)
class RegistryAddress:
    """An OCI registry and the namespace under which each app gets a repository of its own."""

    host: str  # host or host:port, as image references spell it
    namespace: str
    plain_http: bool

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    def repository(self, app: str) -> str:
        """The app's repository in the registry: `<namespace>/<app>`."""
        return f"{self.namespace}/{app}"

    def image_repository(self, app: str) -> str:
        """The app's repository as Docker names it: `<host>/<namespace>/<app>`."""
        return f"{self.host}/{self.repository(app)}"

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.namespace}"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed SHIPYARD_ARTIFACT_STORE: exactly one of a directory or a registry."""

    directory: Path | None = None
    registry: RegistryAddress | None = None


def parse_store_url(url: str, *, plain_http: bool | None = None) -> StoreLocation:
    """Parse the setting; ValueError says what a valid one looks like.

    `plain_http` None: HTTPS, except for a registry on a loopback address (as Docker treats
    127.0.0.0/8 registries as insecure by default).
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:  # never echo a password back into a log or an error
        url = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(
                f"SHIPYARD_ARTIFACT_STORE {url!r}: a directory is file:///absolute/path"
            )
        return StoreLocation(directory=Path(parts.path))
    if parts.scheme == "oci":
        host = parts.netloc
        if not host or "@" in host or not _valid_host(host):
            raise ValueError(
                f"SHIPYARD_ARTIFACT_STORE {url!r}: a registry is oci://host[:port]/namespace "
                "(credentials go in SHIPYARD_REGISTRY_USERNAME and SHIPYARD_REGISTRY_PASSWORD, "
                "never in the URL)"
            )
        namespace = parts.path.strip("/") or DEFAULT_NAMESPACE
        if (
            parts.query
            or parts.fragment
            or not all(_COMPONENT.match(part) for part in namespace.split("/"))
        ):
            raise ValueError(
                f"SHIPYARD_ARTIFACT_STORE {url!r}: the namespace must be lowercase path "
                "components (letters, digits, '.', '_', '-'), as in oci://registry:5000/shipyard"
            )
        if plain_http is None:
            plain_http = _is_loopback(host)
        return StoreLocation(registry=RegistryAddress(host, namespace, plain_http))
    raise ValueError(
        f"SHIPYARD_ARTIFACT_STORE {url!r}: use file:///absolute/dir (the default, "
        "$SHIPYARD_DATA_DIR/artifacts) or oci://host[:port]/namespace (an OCI registry)"
    )


def _valid_host(netloc: str) -> bool:
    host, _, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not host:  # no port given
        host, port = netloc, ""
    return bool(_HOST.match(host)) and (port == "" or (port.isdigit() and 0 < int(port) < 65536))


def _is_loopback(netloc: str) -> bool:
    host = urlsplit(f"//{netloc}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
