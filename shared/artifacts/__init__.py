"""Where artifacts are kept: one interface, a directory (embedded default) or an OCI registry."""

from __future__ import annotations

from shipyard.shared.artifacts.files import FileStore, file_digest
from shipyard.shared.artifacts.location import RegistryAddress, StoreLocation, parse_store_url
from shipyard.shared.artifacts.opening import open_store
from shipyard.shared.artifacts.store import ArtifactStore, ImageRegistry, StoredArtifact

__all__ = [
    "ArtifactStore",
    "FileStore",
    "ImageRegistry",
    "RegistryAddress",
    "StoreLocation",
    "StoredArtifact",
    "file_digest",
    "open_store",
    "parse_store_url",
]
