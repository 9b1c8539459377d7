"""SHIPYARD_ARTIFACT_STORE: a directory or a registry, and clear refusals of anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shipyard.shared.artifacts import RegistryAddress, StoreLocation, parse_store_url
from shipyard.shared.settings import Settings


def test_a_file_url_is_a_directory() -> None:
    assert parse_store_url("file:///srv/artifacts") == StoreLocation(
        directory=Path("/srv/artifacts")
    )


@pytest.mark.parametrize(
    ("url", "host", "namespace", "plain_http"),
    [
        ("oci://127.0.0.1:5000/shipyard", "127.0.0.1:5000", "shipyard", True),
        ("oci://localhost:5000", "localhost:5000", "shipyard", True),
        ("oci://[::1]:5000/team/apps", "[::1]:5000", "team/apps", True),
        ("oci://registry.example.com/acme", "registry.example.com", "acme", False),
        ("oci://registry:5000/a-b.c_d", "registry:5000", "a-b.c_d", False),
    ],
)
def test_an_oci_url_is_a_registry_with_https_except_on_loopback(
    url: str, host: str, namespace: str, plain_http: bool
) -> None:
    registry = parse_store_url(url).registry

    assert registry == RegistryAddress(host=host, namespace=namespace, plain_http=plain_http)
    assert registry.repository("hello") == f"{namespace}/hello"
    assert registry.image_repository("hello") == f"{host}/{namespace}/hello"


def test_plain_http_can_be_forced_either_way() -> None:
    forced = parse_store_url("oci://registry:5000/x", plain_http=True).registry
    refused = parse_store_url("oci://127.0.0.1:5000/x", plain_http=False).registry

    assert forced is not None and forced.base_url == "http://registry:5000"
    assert refused is not None and refused.base_url == "https://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("s3://bucket/artifacts", "use file:///absolute/dir"),
        ("file://relative/dir", "file:///absolute/path"),
        ("oci://user:secret@registry:5000/x", "never in the URL"),
        ("oci://registry:99999/x", "oci://host[:port]/namespace"),
        ("oci://registry:5000/Upper", "lowercase path components"),
        ("oci:///x", "oci://host[:port]/namespace"),
    ],
)
def test_other_urls_are_refused_saying_what_a_valid_one_is(url: str, advice: str) -> None:
    with pytest.raises(ValueError, match=advice.replace("[", r"\[").replace("]", r"\]")) as caught:
        parse_store_url(url)

    assert "secret" not in str(caught.value)


def test_settings_default_to_a_directory_in_the_data_dir_and_refuse_a_bad_store(
    tmp_path: Path,
) -> None:
    assert Settings(data_dir=tmp_path).artifact_store_location.directory == tmp_path / "artifacts"
    assert Settings(data_dir=tmp_path).artifact_cache_dir == tmp_path / "cache" / "artifacts"
    with pytest.raises(ValidationError, match="SHIPYARD_ARTIFACT_STORE"):
        Settings(data_dir=tmp_path, artifact_store="ftp://x/y")


def test_the_replaced_artifact_dir_setting_is_refused_with_its_replacement(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=f"SHIPYARD_ARTIFACT_STORE=file://{tmp_path}/a"):
        Settings(data_dir=tmp_path, artifact_dir=tmp_path / "a")
