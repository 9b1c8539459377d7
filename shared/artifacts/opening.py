"""Opening the artifact store: the one place that picks a backend from the settings.

Apart from the interface (`store.py`) so that imports point one way: the backends import the
interface, and this module imports the backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.shared.artifacts.files import FileStore
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.artifacts.registry import RegistryClient
from shipyard.shared.artifacts.store import ArtifactStore

if TYPE_CHECKING:
    from shipyard.shared.settings import Settings


def open_store(settings: Settings) -> ArtifactStore:
    """The store SHIPYARD_ARTIFACT_STORE names, with its long-lived HTTP client if any."""
    location = settings.artifact_store_location
    if location.registry is None:
        assert location.directory is not None
        return FileStore(location.directory)
    password = settings.registry_password
    client = RegistryClient(
        location.registry,
        username=settings.registry_username,
        password=password.get_secret_value() if password is not None else None,
        ca_file=settings.registry_ca_file,
    )
    return RegistryStore(client, FileStore(settings.artifact_cache_dir))
