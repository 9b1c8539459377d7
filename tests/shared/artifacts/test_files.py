"""The content-addressed artifact store: files named by digest, read-only, verified on use."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from shipyard.shared.artifacts import FileStore, file_digest
from shipyard.shared.exceptions import ArtifactIntegrityError


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.tar.gz"
    path.write_bytes(b"pretend this is a tarball")
    return path


def test_file_digest_is_the_sha256_of_the_content(artifact: Path) -> None:
    expected = hashlib.sha256(b"pretend this is a tarball").hexdigest()

    assert file_digest(artifact) == f"sha256:{expected}"


def test_put_stores_the_file_read_only_under_its_digest(tmp_path: Path, artifact: Path) -> None:
    store = FileStore(tmp_path / "store")

    stored = store.put(artifact, app="app")
    digest, path = stored.digest, Path(stored.location)

    assert digest == file_digest(artifact)
    assert stored.size == artifact.stat().st_size
    assert path == tmp_path / "store" / "sha256" / f"{digest.removeprefix('sha256:')}.tar.gz"
    assert path.read_bytes() == artifact.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert not list(path.parent.glob(".*.tmp"))


def test_putting_the_same_content_twice_keeps_one_file(tmp_path: Path, artifact: Path) -> None:
    store = FileStore(tmp_path / "store")
    copy = tmp_path / "copy.tar.gz"
    copy.write_bytes(artifact.read_bytes())

    first = store.put(artifact, app="app")
    second = store.put(copy, app="app")

    assert first == second
    assert len(list((tmp_path / "store" / "sha256").iterdir())) == 1


def test_fetch_returns_an_untouched_artifact(tmp_path: Path, artifact: Path) -> None:
    store = FileStore(tmp_path / "store")
    stored = store.put(artifact, app="app")
    digest, path = stored.digest, Path(stored.location)

    assert store.fetch(digest, app="app") == path


def test_a_modified_artifact_is_refused_naming_both_digests(tmp_path: Path, artifact: Path) -> None:
    store = FileStore(tmp_path / "store")
    stored = store.put(artifact, app="app")
    digest, path = stored.digest, Path(stored.location)
    path.chmod(0o644)
    path.write_bytes(b"something else")

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.fetch(digest, app="app")

    assert digest in caught.value.message
    assert file_digest(path) in caught.value.message


def test_a_missing_artifact_is_an_integrity_error(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")

    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.fetch("sha256:" + "0" * 64, app="app")


@pytest.mark.parametrize(
    "digest",
    [
        "md5:" + "0" * 64,
        "sha256:abc",
        "sha256:" + "../" * 21 + "a",
        "sha256:" + "0" * 63 + "/",
        "0" * 64,
    ],
)
def test_path_for_accepts_only_sha256_digests(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ArtifactIntegrityError, match="is not a sha256 digest"):
        FileStore(tmp_path).path_for(digest)
