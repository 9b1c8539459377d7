"""The registry store against a real registry: push, pull into a verified cache, refusals, gc."""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import httpx
import pytest

from shipyard.shared.artifacts import FileStore, file_digest, parse_store_url
from shipyard.shared.artifacts.oci import ARTIFACT_TYPE, LAYER_TYPE, artifact_tag
from shipyard.shared.artifacts.registry import BlobMissing, RegistryClient
from shipyard.shared.exceptions import ArtifactIntegrityError, StageFailed
from tests.registry_support import USERNAME, Registry, StoreFactory

pytest_plugins = ["tests.registry_support"]


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    path = tmp_path / "artifact.tar.gz"
    path.write_bytes(os.urandom(300_000))  # random: no two tests share a blob
    return path


def test_a_pushed_artifact_is_a_blob_with_a_tagged_manifest_of_its_own_type(
    registry_store: StoreFactory, registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    store = registry_store(registry, tmp_path / "cache")

    stored = store.put(tarball, app="hello")

    assert stored.digest == file_digest(tarball)
    assert stored.size == tarball.stat().st_size
    assert stored.location == f"{registry.host}/shipyard/hello@{stored.digest}"
    manifest = httpx.get(
        f"http://{registry.host}/v2/shipyard/hello/manifests/{artifact_tag(stored.digest)}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["layers"] == [
        {"mediaType": LAYER_TYPE, "digest": stored.digest, "size": stored.size}
    ]
    assert registry.blob_file(stored.digest).read_bytes() == tarball.read_bytes()
    assert store.put(tarball, app="hello") == stored  # pushing again changes nothing


def test_a_run_host_pulls_into_its_cache_verifies_and_then_needs_no_registry(
    registry_store: StoreFactory, private_registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    digest = (
        registry_store(private_registry, tmp_path / "build-host").put(tarball, app="hello").digest
    )
    run_host = registry_store(private_registry, tmp_path / "run-host")
    assert not (tmp_path / "run-host").exists()

    pulled = run_host.fetch(digest, app="hello")

    assert pulled == FileStore(tmp_path / "run-host").path_for(digest)
    assert pulled.read_bytes() == tarball.read_bytes()
    private_registry.stop()
    assert run_host.fetch(digest, app="hello") == pulled  # the cache answers, verified again


def test_a_blob_changed_in_the_registry_is_refused_and_nothing_is_cached(
    registry_store: StoreFactory, private_registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    digest = (
        registry_store(private_registry, tmp_path / "build-host").put(tarball, app="hello").digest
    )
    blob = private_registry.blob_file(digest)
    blob.write_bytes(b"tampered" + blob.read_bytes()[8:])
    run_host = registry_store(private_registry, tmp_path / "run-host")

    with pytest.raises(ArtifactIntegrityError, match="modified or damaged") as caught:
        run_host.fetch(digest, app="hello")

    assert digest in caught.value.message
    assert file_digest(blob) in caught.value.message
    assert not any(path.is_file() for path in (tmp_path / "run-host").rglob("*"))


def test_the_registry_refuses_content_that_does_not_match_its_digest(
    registry_store: StoreFactory, registry: Registry, tmp_path: Path
) -> None:
    client = registry_store(registry, tmp_path / "cache").client
    wrong = "sha256:" + "0" * 64

    with pytest.raises(ArtifactIntegrityError, match="DIGEST_INVALID"):
        client.upload_blob("shipyard/hello", wrong, b"not what the digest says")


def test_remove_deletes_the_manifest_and_registry_gc_then_reclaims_the_blob(
    registry_store: StoreFactory, private_registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    store = registry_store(private_registry, tmp_path / "cache")
    digest = store.put(tarball, app="hello").digest
    store.fetch(digest, app="hello")

    store.remove(digest, app="hello")
    store.remove(digest, app="hello")  # a gone one is fine

    assert store.client.manifest_digest("shipyard/hello", artifact_tag(digest)) is None
    assert not store.cache.path_for(digest).exists()
    private_registry.stop()  # distribution's garbage collection runs offline
    private_registry.garbage_collect()
    private_registry.start()
    with pytest.raises(BlobMissing, match="garbage-collected"):
        store.fetch(digest, app="hello")
    # Built again, it is pushed again, the empty config blob the gc also took included.
    assert store.put(tarball, app="hello").digest == digest
    assert store.fetch(digest, app="hello").read_bytes() == tarball.read_bytes()


def test_an_unreachable_registry_fails_with_what_to_check(
    registry_store: StoreFactory, private_registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    store = registry_store(private_registry, tmp_path / "cache")
    digest = file_digest(tarball)
    private_registry.stop()

    for attempt in (lambda: store.put(tarball, app="hello"), lambda: store.fetch(digest, app="x")):
        with pytest.raises(StageFailed, match="is unreachable") as caught:
            attempt()
        assert private_registry.host in caught.value.message
        assert "SHIPYARD_ARTIFACT_STORE" in caught.value.message
    assert not any(path.is_file() for path in (tmp_path / "cache").rglob("*"))


def test_a_registry_that_wants_credentials_gets_them_and_a_wrong_password_is_named_not_shown(
    registry_store: StoreFactory, secured_registry: Registry, tmp_path: Path, tarball: Path
) -> None:
    assert secured_registry.password is not None
    anonymous = registry_store(secured_registry, tmp_path / "a")
    wrong = registry_store(secured_registry, tmp_path / "b", username=USERNAME, password="wrong-pw")
    right = registry_store(
        secured_registry, tmp_path / "c", username=USERNAME, password=secured_registry.password
    )

    for store in (anonymous, wrong):
        with pytest.raises(StageFailed, match="SHIPYARD_REGISTRY_USERNAME") as caught:
            store.put(tarball, app="hello")
        assert "wrong-pw" not in caught.value.message
    digest = right.put(tarball, app="hello").digest
    assert right.fetch(digest, app="hello").read_bytes() == tarball.read_bytes()
    assert right.docker_auth() == {"username": USERNAME, "password": secured_registry.password}


def test_a_bearer_challenge_is_answered_with_a_token_from_the_realm_once_per_repository() -> None:
    """Docker Hub, GHCR and Harbor answer 401 with a token realm (a fake one here: wiring only)."""
    seen: list[tuple[str, str | None]] = []

    def registry_and_realm(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("Authorization")))
        if request.url.host == "auth.example":
            assert request.url.params["scope"] == "repository:acme/hello:pull,push"
            return httpx.Response(200, json={"token": "t0ken"})
        if request.headers.get("Authorization") != "Bearer t0ken":
            challenge = (
                'Bearer realm="https://auth.example/token",service="registry.example",'
                'scope="repository:acme/hello:pull,push"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "a" * 64})

    address = parse_store_url("oci://registry.example/acme").registry
    assert address is not None
    client = RegistryClient(
        address, username="robot", password="pw", transport=httpx.MockTransport(registry_and_realm)
    )

    assert client.manifest_digest("acme/hello", "v1") == "sha256:" + "a" * 64
    assert client.manifest_digest("acme/hello", "v2") == "sha256:" + "a" * 64

    paths = [path for path, _auth in seen]
    assert paths == [
        "/v2/acme/hello/manifests/v1",
        "/token",
        "/v2/acme/hello/manifests/v1",
        "/v2/acme/hello/manifests/v2",  # the token is reused: no second challenge
    ]
    # The credentials go to the realm only, which trades them for the token.
    assert seen[1][1] == "Basic " + base64.b64encode(b"robot:pw").decode()
    assert {auth for _path, auth in seen[2:]} == {"Bearer t0ken"}


def test_credentials_stay_with_the_registry_and_go_to_a_token_realm_only_over_https() -> None:
    """An upload location on another host gets no Authorization; a plain-HTTP realm on another
    host gets no password (wiring only: a fake registry)."""
    seen: list[tuple[str, str | None]] = []

    def fake(request: httpx.Request) -> httpx.Response:
        seen.append((f"{request.url.host}{request.url.path}", request.headers.get("Authorization")))
        if request.url.host == "evil.example":
            if request.url.path == "/token":
                return httpx.Response(200, json={"token": "stolen"})
            return httpx.Response(201)
        if request.url.path.endswith("/blobs/uploads/"):
            if request.headers.get("Authorization") is None:
                challenge = 'Bearer realm="http://evil.example/token",service="registry"'
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
            return httpx.Response(202, headers={"Location": "https://evil.example/upload/1"})
        return httpx.Response(404)

    address = parse_store_url("oci://registry.example/acme").registry
    assert address is not None
    client = RegistryClient(
        address, username="robot", password="pw", transport=httpx.MockTransport(fake)
    )

    client.upload_blob("acme/hello", "sha256:" + "d" * 64, b"content")

    token_request = next(auth for where, auth in seen if where == "evil.example/token")
    upload = next(auth for where, auth in seen if where == "evil.example/upload/1")
    assert token_request is None  # no password to a plain-HTTP realm on another host
    assert upload is None  # the upload location is another origin: nothing of ours


def test_a_registry_that_challenges_the_upload_itself_gets_the_whole_upload_again() -> None:
    """A token that expires between the POST and the PUT: the file's bytes cannot be sent twice,
    so the upload starts over once, with the new token (wiring only: a fake registry)."""
    tokens = iter(["first", "second"])
    puts: list[str | None] = []

    def fake(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": next(tokens)})
        challenge = {"WWW-Authenticate": 'Bearer realm="https://registry.example/token"'}
        auth = request.headers.get("Authorization")
        if request.method == "POST":
            if auth is None:
                return httpx.Response(401, headers=challenge)
            return httpx.Response(202, headers={"Location": "/v2/acme/hello/blobs/uploads/u1"})
        request.read()
        puts.append(auth)
        if auth == "Bearer first":  # expired
            return httpx.Response(401, headers=challenge)
        return httpx.Response(201)

    address = parse_store_url("oci://registry.example/acme").registry
    assert address is not None
    client = RegistryClient(address, transport=httpx.MockTransport(fake))

    with tempfile.NamedTemporaryFile() as blob:
        blob.write(b"x" * 1000)
        blob.flush()
        client.upload_blob("acme/hello", "sha256:" + "e" * 64, Path(blob.name))

    assert puts == ["Bearer first", "Bearer second"]


def test_a_damaged_copy_in_a_run_hosts_cache_is_pulled_again(
    registry: Registry, registry_store: StoreFactory, tmp_path: Path, tarball: Path
) -> None:
    store = registry_store(registry, tmp_path / "cache")
    digest = store.put(tarball, app="hello").digest
    cached = store.fetch(digest, app="hello")
    cached.chmod(0o644)
    cached.write_bytes(b"damaged on this host")

    again = store.fetch(digest, app="hello")

    assert file_digest(again) == digest and again.read_bytes() == tarball.read_bytes()
