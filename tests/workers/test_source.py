"""Source checkout: a ref resolves to one commit, and only that commit's files are exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.shared.exceptions import StageFailed
from shipyard.workers import source
from tests.repos import commit_files, git


def test_head_resolves_to_the_current_commit(repo: Path, tmp_path: Path) -> None:
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")

    assert commit.sha == git(repo, "rev-parse", "HEAD")
    assert len(commit.sha) == 40
    assert commit.timestamp == int(git(repo, "log", "-1", "--format=%ct"))
    assert commit.git_dir == str(repo)


def test_a_branch_tag_and_short_sha_resolve_to_their_commits(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v1")
    git(repo, "checkout", "--quiet", "-b", "feature")
    second = commit_files(repo, {"feature.txt": "new\n"})
    git(repo, "checkout", "--quiet", "main")
    mirrors = tmp_path / "mirrors"

    assert source.resolve(str(repo), "feature", mirrors).sha == second
    assert source.resolve(str(repo), "main", mirrors).sha == first
    assert source.resolve(str(repo), "v1", mirrors).sha == first
    assert source.resolve(str(repo), second[:10], mirrors).sha == second
    assert source.resolve(str(repo), "feature~1", mirrors).sha == first


def test_a_ref_that_names_no_commit_fails_clearly(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(StageFailed) as caught:
        source.resolve(str(repo), "no-such-branch", tmp_path / "mirrors")

    assert caught.value.message == f"ref 'no-such-branch' does not name a commit in {repo}"


def test_a_ref_that_looks_like_an_option_is_not_read_as_one(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match="does not name a commit"):
        source.resolve(str(repo), "--git-dir=/etc", tmp_path / "mirrors")


def test_a_remote_repository_is_mirrored_and_fetched_again(repo: Path, tmp_path: Path) -> None:
    url = f"file://{repo}"
    mirrors = tmp_path / "mirrors"

    first = source.resolve(url, "main", mirrors)
    second_sha = commit_files(repo, {"more.txt": "more\n"})
    second = source.resolve(url, "main", mirrors)

    assert first.sha != second.sha == second_sha
    assert Path(second.git_dir).parent == mirrors
    assert len(list(mirrors.iterdir())) == 1


def test_a_repository_that_does_not_exist_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StageFailed, match="git clone failed"):
        source.resolve(f"file://{tmp_path / 'missing'}", "HEAD", tmp_path / "mirrors")


def test_export_writes_only_the_committed_files(repo: Path, tmp_path: Path) -> None:
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")
    (repo / "uncommitted.txt").write_text("not in any commit\n")
    (repo / "README.md").write_text("edited but not committed\n")
    git(repo, "add", "uncommitted.txt")  # staged is not committed either
    destination = tmp_path / "export"

    source.export(commit, "", destination)

    files = sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*"))
    assert files == ["Procfile", "README.md", "web", "web/Procfile", "web/server.py"]
    assert (destination / "README.md").read_text() == "root\n"


def test_export_of_an_older_commit_has_that_commits_content(repo: Path, tmp_path: Path) -> None:
    old = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")
    commit_files(repo, {"README.md": "second version\n"})

    source.export(old, "", tmp_path / "export")

    assert (tmp_path / "export" / "README.md").read_text() == "root\n"


def test_export_of_a_subpath_puts_its_files_at_the_root(repo: Path, tmp_path: Path) -> None:
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")
    destination = tmp_path / "export"

    source.export(commit, "web", destination)

    assert sorted(p.name for p in destination.iterdir()) == ["Procfile", "server.py"]
    assert (destination / "Procfile").read_text() == "web: python server.py\n"


def test_export_of_a_subpath_that_does_not_exist_fails_clearly(repo: Path, tmp_path: Path) -> None:
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")

    with pytest.raises(StageFailed) as caught:
        source.export(commit, "api", tmp_path / "export")

    assert caught.value.message == f"path 'api' does not exist at commit {commit.sha[:12]}"
    assert not (tmp_path / "export").exists()


def test_a_committed_link_to_an_absolute_path_fails_clearly(repo: Path, tmp_path: Path) -> None:
    (repo / "web" / "python").symlink_to("/usr/bin/python3")
    commit_files(repo, {})
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")

    with pytest.raises(StageFailed, match="web/python"):
        source.export(commit, "", tmp_path / "export")
