"""open_store: the backend SHIPYARD_ARTIFACT_STORE names, and imports that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

from shipyard.shared import artifacts
from shipyard.shared.artifacts import FileStore, open_store
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.settings import Settings


def test_a_directory_opens_a_file_store(tmp_path: Path) -> None:
    store = open_store(Settings(data_dir=tmp_path, artifact_store=f"file://{tmp_path / 'kept'}"))

    assert isinstance(store, FileStore)
    assert store.root == tmp_path / "kept"


def test_a_registry_opens_a_registry_store_caching_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, artifact_store="oci://127.0.0.1:5000/team")

    store = open_store(settings)

    try:
        assert isinstance(store, RegistryStore)
        assert str(store) == str(settings.artifact_store_location.registry)
        assert store.cache.root == settings.artifact_cache_dir
    finally:
        store.close()


def test_the_interface_imports_none_of_the_backends() -> None:
    # The backends import the interface (StoredArtifact); the interface must not import them.
    source = Path(artifacts.__file__).with_name("store.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }

    assert not {module for module in imported if module.startswith("shipyard.shared.artifacts")}
