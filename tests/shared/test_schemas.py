"""API input schemas: names, refs and paths that are safe in paths, URLs and git commands."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.shared.schemas import AppCreate, ConfigPatch, EnvironmentCreate, PipelineCreate

UNSAFE_NAMES = [
    "../etc",
    "a;rm -rf",
    "UPPER",
    "-leading-dash",
    "trailing-dash-",
    "has space",
    "dot.name",
    "slash/name",
    "$(whoami)",
    "",
    "a" * 64,
]
UNSAFE_REFS = [
    "-n",
    "--output=/tmp/x",
    "main;rm -rf /",
    "main && true",
    "$(whoami)",
    "`id`",
    "a b",
    "main\n",
    "",
    "x" * 256,
]
UNSAFE_PATHS = ["../outside", "a/../../b", "/etc", "-rf", "a;b", "a b", "$(id)", "a\nb"]


@pytest.mark.parametrize("name", ["web", "my-app-2", "a", "0", "a" * 63])
def test_dns_label_names_are_accepted(name: str) -> None:
    assert AppCreate(name=name, repo="/srv/repo").name == name
    assert EnvironmentCreate(name=name).name == name


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_app_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        AppCreate(name=name, repo="/srv/repo")


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_environment_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        EnvironmentCreate(name=name)


@pytest.mark.parametrize(
    "ref", ["HEAD", "main", "v1.2.3", "feature/login", "HEAD~1", "main^", "a1b2c3d4", "v1@{0}"]
)
def test_branch_tag_and_commit_refs_are_accepted(ref: str) -> None:
    assert PipelineCreate(environment="staging", ref=ref).ref == ref


@pytest.mark.parametrize("ref", UNSAFE_REFS)
def test_unsafe_refs_are_rejected(ref: str) -> None:
    with pytest.raises(ValidationError, match="ref"):
        PipelineCreate(environment="staging", ref=ref)


def test_a_pipeline_defaults_to_head_from_the_api() -> None:
    pipeline = PipelineCreate(environment="staging")

    assert (pipeline.ref, pipeline.trigger) == ("HEAD", "api")


@pytest.mark.parametrize(
    ("path", "normalised"),
    [("", ""), ("services/web", "services/web"), ("a/./b", "a/b"), ("web/", "web")],
)
def test_relative_subpaths_are_accepted_and_normalised(path: str, normalised: str) -> None:
    assert AppCreate(name="web", repo="/srv/repo", path=path).path == normalised


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_unsafe_subpaths_are_rejected(path: str) -> None:
    with pytest.raises(ValidationError, match="path"):
        AppCreate(name="web", repo="/srv/repo", path=path)


@pytest.mark.parametrize("repo", ["-uhelp", "--upload-pack=touch /tmp/x", "/srv/repo\n", ""])
def test_a_repo_that_git_could_read_as_an_option_is_rejected(repo: str) -> None:
    with pytest.raises(ValidationError, match="repo"):
        AppCreate(name="web", repo=repo)


@pytest.mark.parametrize("repo", ["/srv/git/app", "https://example.com/app.git", "git@host:app"])
def test_paths_and_urls_are_accepted_as_repo(repo: str) -> None:
    assert AppCreate(name="web", repo=repo).repo == repo


@pytest.mark.parametrize("repo", ["repo", "./repo", "../apps/repo", "~/repo", "sub/dir:x"])
def test_a_relative_local_repo_is_rejected_with_why(repo: str) -> None:
    # The servers run in their data directory: a relative path would name something else there.
    with pytest.raises(ValidationError, match="a local repo must be an absolute path"):
        AppCreate(name="web", repo=repo)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AppCreate.model_validate({"name": "web", "repo": "/srv/repo", "owner": "root"})


@pytest.mark.parametrize("builder", ["kubernetes", "../local", "local; id", "LOCAL"])
def test_only_known_builders_and_runners_are_accepted(builder: str) -> None:
    with pytest.raises(ValidationError, match="builder"):
        AppCreate.model_validate({"name": "web", "repo": "/srv/repo", "builder": builder})
    with pytest.raises(ValidationError, match="runner"):
        EnvironmentCreate.model_validate({"name": "web", "runner": builder})


@pytest.mark.parametrize("health_path", ["", "health", "/with space", "/new\nline"])
def test_the_health_path_must_be_an_absolute_url_path(health_path: str) -> None:
    with pytest.raises(ValidationError, match="health_path"):
        EnvironmentCreate(name="web", health_path=health_path)


@pytest.mark.parametrize("timeout", [0, -1, 601])
def test_the_health_timeout_must_be_positive_and_bounded(timeout: float) -> None:
    with pytest.raises(ValidationError, match="health_timeout"):
        EnvironmentCreate(name="web", health_timeout=timeout)


@pytest.mark.parametrize("key", ["1ABC", "A-B", "A B", "A=B", "", "K" * 129])
def test_config_keys_must_be_shell_variable_names(key: str) -> None:
    with pytest.raises(ValidationError):
        ConfigPatch(vars={key: "value"})
    with pytest.raises(ValidationError):
        ConfigPatch(secrets=[key])


def test_a_config_patch_sets_and_unsets() -> None:
    patch = ConfigPatch(vars={"DEBUG": "1", "OLD": None}, secrets=["DEBUG"])

    assert patch.vars == {"DEBUG": "1", "OLD": None}
    assert patch.secrets == ["DEBUG"]
    assert patch.deploy is True
