"""Opening the artifact store: the one place that picks a backend from the settings.

Apart from the interface (`store.py`) so that imports point one way: the backends import the
interface, and this module imports the backends.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.shared.artifacts.files import FileStore
from shipyard.shared.artifacts.location import StoreLocation
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.artifacts.registry import RegistryClient
from shipyard.shared.artifacts.store import ArtifactStore


def open_store(
    location: StoreLocation,
    *,
    cache_dir: Path,
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
) -> ArtifactStore:
    """The store `location` names (SHIPYARD_ARTIFACT_STORE): a directory, or a registry with
    its long-lived HTTP client, whose pulled copies are kept in `cache_dir`.

    Plain values, not the settings: the settings parse the location with this package, so the
    package stays below them."""
    if location.registry is None:
        assert location.directory is not None
        return FileStore(location.directory)
    client = RegistryClient(
        location.registry, username=username, password=password, ca_file=ca_file
    )
    return RegistryStore(client, FileStore(cache_dir))
