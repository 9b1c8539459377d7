"""The part of the OCI distribution API that Shipyard uses, over httpx.

Blobs are uploaded monolithically (POST, then PUT with `?digest=`: the registry refuses content
that does not match with DIGEST_INVALID), manifests are put under a tag and deleted by digest.
Authentication answers the registry's challenge: HTTP Basic, or a bearer token fetched from the
realm it names (Docker Hub, GHCR, Harbor, distribution's token auth). Errors come out as
StageFailed messages that say what to do; no message carries a credential.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import threading
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from shipyard.shared.artifacts.location import RegistryAddress
from shipyard.shared.exceptions import ArtifactIntegrityError, StageFailed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_MANIFEST_TYPES = ", ".join(
    (
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
_CHUNK = 1 << 20
# Chunks received ahead of the digest of a download (memory: this many MB at most).
_CHUNKS_AHEAD = 4
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# Connection failures are retried by the transport (with a short backoff) before a stage fails.
_CONNECT_RETRIES = 3


class BlobMissing(StageFailed):
    """The registry has no blob (or manifest) by that digest."""


class RegistryAuth(httpx.Auth):
    """Answers a registry's 401 challenge once per repository, then reuses the answer.

    Credentials go to the registry's own origin only (never to a host an upload location or a
    redirect names), and to a token realm only over HTTPS or on the registry's own host.
    """

    def __init__(self, origin: httpx.URL, username: str | None, password: str | None) -> None:
        self._origin = (origin.scheme, origin.host, origin.port)
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            if username
            else None
        )
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()

    def _own(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == self._origin

    def _may_receive_credentials(self, realm: httpx.URL) -> bool:
        return realm.scheme == "https" or realm.host == self._origin[1]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._own(request.url):
            yield request  # another origin gets nothing of ours
            return
        key = _repository_of(request.url.path)
        with self._lock:
            known = self._answers.get(key)
        if known is not None:
            request.headers["Authorization"] = known
        response = yield request
        if response.status_code != 401:
            return
        scheme, _, rest = response.headers.get("WWW-Authenticate", "").partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        if scheme.lower() == "basic":
            if self._basic is None:
                return
            answer = self._basic
        elif scheme.lower() == "bearer" and "realm" in params:
            realm = httpx.URL(params["realm"])
            query = {name: params[name] for name in ("service", "scope") if name in params}
            token_request = httpx.Request("GET", realm, params=query)
            if self._basic is not None and self._may_receive_credentials(realm):
                token_request.headers["Authorization"] = self._basic
            token_response = yield token_request
            token_response.read()
            token = _token_of(token_response)
            if token is None:
                return
            answer = f"Bearer {token}"
        else:
            return
        with self._lock:
            self._answers[key] = answer
        request.headers["Authorization"] = answer
        yield request


def _token_of(response: httpx.Response) -> str | None:
    """The bearer token a realm answered with (None: it refused, or said nothing usable)."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    return str(token) if token else None


def _repository_of(path: str) -> str:
    """`/v2/<repository>/blobs/...` → `<repository>`: tokens are scoped per repository."""
    for marker in ("/blobs/", "/manifests/", "/tags/"):
        if marker in path:
            return path.removeprefix("/v2/").split(marker)[0]
    return ""


class RegistryClient:
    """One registry's HTTP API, with a long-lived connection pool (made once per worker)."""

    def __init__(
        self,
        address: RegistryAddress,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = address
        self._username = username
        self._password = password
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(
            base_url=address.base_url,
            auth=RegistryAuth(httpx.URL(address.base_url), username, password),
            transport=transport or httpx.HTTPTransport(retries=_CONNECT_RETRIES, verify=verify),
            timeout=httpx.Timeout(timeout, connect=5.0),
            headers={"User-Agent": "shipyard"},
        )

    def close(self) -> None:
        self._http.close()

    def docker_auth(self) -> dict[str, str] | None:
        """The credentials in the Docker Engine API's form (for push and pull)."""
        if not self._username:
            return None
        return {"username": self._username, "password": self._password or ""}

    # --- blobs --------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._send("HEAD", f"/v2/{repository}/blobs/{digest}", "check a blob")
        if response.status_code == 404:
            return False
        self._check(response, f"check blob {digest}")
        return True

    def upload_blob(self, repository: str, digest: str, content: Path | bytes) -> None:
        """A monolithic upload; the registry verifies `digest` against what it received."""
        try:
            self._upload(repository, digest, content)
        except httpx.StreamError:
            # A file's bytes are sent once: a registry that challenged the PUT (its token
            # expired since the POST) is answered now, and the upload starts over, once.
            try:
                self._upload(repository, digest, content)
            except httpx.StreamError as exc:
                raise StageFailed(
                    f"the registry {self.address} refused Shipyard's credentials twice while "
                    f"uploading {digest}: check SHIPYARD_REGISTRY_USERNAME and _PASSWORD"
                ) from exc

    def _upload(self, repository: str, digest: str, content: Path | bytes) -> None:
        what = f"upload blob {digest}"
        started = self._send("POST", f"/v2/{repository}/blobs/uploads/", what)
        self._check(started, what)
        location = started.headers.get("Location")
        if not location:
            raise StageFailed(f"the registry {self.address} gave no upload location ({what})")
        url = self._http.base_url.join(location).copy_merge_params({"digest": digest})
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(content, bytes):
            finished = self._send("PUT", url, what, content=content, headers=headers)
        else:
            size = content.stat().st_size
            with content.open("rb") as handle:
                headers["Content-Length"] = str(size)
                finished = self._send("PUT", url, what, content=_chunks(handle), headers=headers)
        self._check(finished, what)

    def download_blob(self, repository: str, digest: str, target: Path) -> str:
        """Write the blob to `target` and return the digest of what actually arrived."""
        what = f"download artifact {digest}"
        hasher = hashlib.sha256()
        try:
            with self._http.stream(
                "GET", f"/v2/{repository}/blobs/{digest}", follow_redirects=True
            ) as response:
                if response.status_code == 404:
                    raise BlobMissing(
                        f"artifact {digest} is not in the registry {self.address} (repository "
                        f"{repository}): it was garbage-collected or pushed to another registry; "
                        "build the commit again"
                    )
                if response.status_code >= 400:
                    response.read()
                    self._check(response, what)
                # The digest is computed on a thread of its own (hashlib lets go of the GIL on
                # large chunks), beside the socket reads and file writes: in order, since one
                # thread takes the chunks as they come, and a few chunks ahead at most.
                with (
                    target.open("wb") as out,
                    ThreadPoolExecutor(1, thread_name_prefix="artifact-digest") as digesting,
                ):
                    hashing: deque[Future[None]] = deque()
                    for chunk in response.iter_bytes(_CHUNK):
                        hashing.append(digesting.submit(hasher.update, chunk))
                        out.write(chunk)
                        if len(hashing) > _CHUNKS_AHEAD:
                            hashing.popleft().result()
                    for update in hashing:
                        update.result()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, what) from exc
        return f"sha256:{hasher.hexdigest()}"

    # --- manifests ----------------------------------------------------------------------------

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under `reference` (a tag); returns its digest."""
        what = f"push the manifest {repository}:{reference}"
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            what,
            content=body,
            headers={"Content-Type": media_type},
        )
        self._check(response, what)
        return response.headers.get("Docker-Content-Digest") or (
            f"sha256:{hashlib.sha256(body).hexdigest()}"
        )

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest of the manifest `reference` names (a tag or a digest); None if none."""
        what = f"look up the manifest {repository}:{reference}"
        response = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            what,
            headers={"Accept": _MANIFEST_TYPES},
        )
        if response.status_code == 404:
            return None
        self._check(response, what)
        digest: str | None = response.headers.get("Docker-Content-Digest")
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest (and every tag on it) by digest; a gone one is fine."""
        what = f"delete the manifest {repository}@{digest}"
        response = self._send("DELETE", f"/v2/{repository}/manifests/{digest}", what)
        if response.status_code == 404:
            return
        if response.status_code == 405:
            raise StageFailed(
                f"the registry {self.address} does not allow deletes: enable them in its "
                "configuration (storage: delete: enabled: true), then run `shipyard gc` again"
            )
        self._check(response, what)

    # --- errors -------------------------------------------------------------------------------

    def _send(self, method: str, url: httpx.URL | str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc, what) from exc

    def _unreachable(self, exc: httpx.HTTPError, what: str) -> StageFailed:
        if isinstance(exc, httpx.TimeoutException):
            reason = "it did not answer in time"
        elif isinstance(exc, httpx.ConnectError):
            reason = f"cannot connect: {exc}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        return StageFailed(
            f"the artifact registry {self.address} is unreachable ({reason}) while trying to "
            f"{what}; check that it is running and that SHIPYARD_ARTIFACT_STORE names it, "
            "then run the pipeline again"
        )

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        codes, detail = _errors(response)
        if response.status_code == 401:
            raise StageFailed(
                f"the registry {self.address} refused Shipyard's credentials ({what}): set "
                "SHIPYARD_REGISTRY_USERNAME and SHIPYARD_REGISTRY_PASSWORD to an account that "
                "may push and pull there"
            )
        if response.status_code == 403:
            raise StageFailed(
                f"the registry {self.address} denied access ({what}): the account in "
                "SHIPYARD_REGISTRY_USERNAME may not push or pull that repository"
            )
        if "DIGEST_INVALID" in codes:
            raise ArtifactIntegrityError(
                f"the registry {self.address} refused the content ({what}): it does not match "
                "its digest (DIGEST_INVALID)"
            )
        if "BLOB_UNKNOWN" in codes or "MANIFEST_BLOB_UNKNOWN" in codes:
            raise BlobMissing(f"the registry {self.address} is missing a blob ({what}): {detail}")
        raise StageFailed(
            f"the registry {self.address} answered {response.status_code} to {what}"
            + (f": {detail}" if detail else "")
        )


def _errors(response: httpx.Response) -> tuple[set[str], str]:
    """The error codes and messages of a registry's JSON error body."""
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return set(), ""
    codes = {str(error.get("code")) for error in errors if isinstance(error, dict)}
    detail = "; ".join(
        f"{error.get('code')}: {error.get('message')}"
        for error in errors
        if isinstance(error, dict)
    )
    return codes, detail


def _chunks(handle: Any) -> Generator[bytes, None, None]:
    while chunk := handle.read(_CHUNK):
        yield chunk
