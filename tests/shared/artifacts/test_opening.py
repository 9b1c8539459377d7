"""open_store: the backend SHIPYARD_ARTIFACT_STORE names."""

from __future__ import annotations

from pathlib import Path

from shipyard.shared.artifacts import FileStore, open_store
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.settings import Settings


def test_a_directory_opens_a_file_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, artifact_store=f"file://{tmp_path / 'kept'}")

    store = open_store(settings.artifact_store_location, cache_dir=settings.artifact_cache_dir)

    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "kept"


def test_a_registry_opens_a_registry_store_caching_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, artifact_store="oci://127.0.0.1:5000/team")

    store = open_store(settings.artifact_store_location, cache_dir=settings.artifact_cache_dir)

    try:
        assert isinstance(store, RegistryStore)
        assert str(store) == str(settings.artifact_store_location.registry)
        assert store.cache.root == settings.artifact_cache_dir
    finally:
        store.close()
