"""Artifacts in an OCI registry, pulled by run hosts into a local content-addressed cache.

A local-builder artifact (a tar.gz) is one blob named by its own sha256 digest, so the artifact
id is the same whichever store holds it. A small OCI manifest of Shipyard's own artifact type
points at it and is tagged `sha256-<hex>`: registry garbage collection keeps what a tag reaches,
and `shipyard gc` deletes the manifests of artifacts no kept release needs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import structlog

from shipyard.shared.artifacts.files import FileStore, check_digest, file_digest
from shipyard.shared.artifacts.registry import OCI_MANIFEST, BlobMissing, RegistryClient
from shipyard.shared.artifacts.store import StoredArtifact
from shipyard.shared.exceptions import ArtifactIntegrityError

log = structlog.get_logger(__name__)

ARTIFACT_TYPE = "application/vnd.shipyard.artifact.v1"
LAYER_TYPE = "application/vnd.shipyard.artifact.layer.v1.tar+gzip"
# The OCI "empty" config: artifacts carry no image config.
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = f"sha256:{hashlib.sha256(EMPTY_CONFIG).hexdigest()}"


def artifact_tag(digest: str) -> str:
    """The tag that keeps artifact `digest`'s manifest: `sha256-<hex>`."""
    return f"sha256-{check_digest(digest)}"


def artifact_manifest(digest: str, size: int) -> bytes:
    """The manifest of one artifact blob (canonical JSON: the same artifact, the same bytes)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": digest, "size": size}],
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


class RegistryStore:
    """Pushes artifacts to a registry; fetches them into this host's cache, verified."""

    def __init__(self, client: RegistryClient, cache: FileStore) -> None:
        self.client = client
        self.cache = cache
        # Repositories known to hold the empty config blob: one request less per push.
        self._configured: set[str] = set()

    def __str__(self) -> str:
        return str(self.client.address)

    def close(self) -> None:
        self.client.close()

    @property
    def images(self) -> RegistryStore:
        return self  # Docker images go to the same registry

    def put(self, source: Path, *, app: str) -> StoredArtifact:
        digest = file_digest(source)
        size = source.stat().st_size
        repository = self.client.address.repository(app)
        if not self.client.blob_exists(repository, digest):
            self.client.upload_blob(repository, digest, source)
        manifest = artifact_manifest(digest, size)
        try:
            self._ensure_config(repository)
            self.client.put_manifest(repository, artifact_tag(digest), manifest, OCI_MANIFEST)
        except BlobMissing:  # the registry's own gc took the config blob since: push it again
            self._configured.discard(repository)
            self._ensure_config(repository)
            self.client.put_manifest(repository, artifact_tag(digest), manifest, OCI_MANIFEST)
        log.info("artifact.pushed", artifact_id=digest, size=size, registry=str(self))
        return StoredArtifact(
            digest=digest, size=size, location=f"{self.client.address.host}/{repository}@{digest}"
        )

    def _ensure_config(self, repository: str) -> None:
        if repository in self._configured:
            return
        if not self.client.blob_exists(repository, EMPTY_DIGEST):
            self.client.upload_blob(repository, EMPTY_DIGEST, EMPTY_CONFIG)
        self._configured.add(repository)

    def fetch(self, digest: str, *, app: str) -> Path:
        cached = self.cache.path_for(digest)
        if cached.is_file():
            try:
                return self.cache.fetch(digest, app=app)  # verified again, without the network
            except ArtifactIntegrityError:
                # This host's copy was damaged; the registry's is checked as it arrives.
                log.warning("artifact.cache_damaged", artifact_id=digest)
                cached.unlink(missing_ok=True)
        partial = self.cache.temporary_path(digest)
        try:
            actual = self.client.download_blob(self.client.address.repository(app), digest, partial)
            if actual != digest:
                raise ArtifactIntegrityError(
                    f"artifact {digest} from the registry {self} has content {actual}: the "
                    "registry's copy was modified or damaged; refusing to run it (delete that "
                    "blob, or the repository, in the registry, then deploy the commit again)"
                )
            path = self.cache.adopt(digest, partial)
        finally:
            partial.unlink(missing_ok=True)
        log.info("artifact.pulled", artifact_id=digest, size=path.stat().st_size, verified=True)
        return path

    def has(self, digest: str, *, app: str) -> bool:
        repository = self.client.address.repository(app)
        return self.client.manifest_digest(repository, artifact_tag(digest)) is not None

    def remove(self, digest: str, *, app: str) -> None:
        repository = self.client.address.repository(app)
        manifest = self.client.manifest_digest(repository, artifact_tag(digest))
        if manifest is not None:
            self.client.delete_manifest(repository, manifest)
        self.cache.remove(digest, app=app)

    # --- Docker images (ImageRegistry) ---------------------------------------------------------

    def image_repository(self, app: str) -> str:
        return self.client.address.image_repository(app)

    def docker_auth(self) -> dict[str, str] | None:
        return self.client.docker_auth()

    def has_image(self, app: str, digest: str) -> bool:
        return self.client.manifest_digest(self.client.address.repository(app), digest) is not None

    def delete_image(self, app: str, digest: str) -> None:
        self.client.delete_manifest(self.client.address.repository(app), digest)
