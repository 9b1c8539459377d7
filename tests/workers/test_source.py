"""Source checkout: a ref resolves to one commit, and only that commit's files are exported."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    assert Path(commit.git_dir).parent == tmp_path / "mirrors"  # never the repository itself


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


def test_head_follows_the_repository_s_checked_out_commit_across_switches(
    repo: Path, tmp_path: Path
) -> None:
    mirrors = tmp_path / "mirrors"
    git(repo, "checkout", "--quiet", "-b", "feature")
    on_feature = commit_files(repo, {"feature.txt": "new\n"})
    assert source.resolve(str(repo), "HEAD", mirrors).sha == on_feature  # the mirror is made

    git(repo, "checkout", "--quiet", "main")
    on_main = commit_files(repo, {"main.txt": "newer\n"})
    assert source.resolve(str(repo), "HEAD", mirrors).sha == on_main
    assert source.resolve(str(repo), "HEAD~1", mirrors).sha == git(repo, "rev-parse", "main~1")

    git(repo, "checkout", "--quiet", "--detach", on_feature)
    assert source.resolve(str(repo), "HEAD", mirrors).sha == on_feature


def test_a_clone_that_did_not_finish_leaves_no_mirror_behind(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirrors = tmp_path / "mirrors"
    real_git = source._git

    def killed_clone(*args: str, **kwargs: str) -> bytes:
        if args[0] == "clone":
            real_git(*args, **kwargs)  # the clone's files are there, as a killed one leaves some
            raise StageFailed("git clone timed out after 120s")
        return real_git(*args, **kwargs)

    monkeypatch.setattr(source, "_git", killed_clone)
    with pytest.raises(StageFailed, match="timed out"):
        source.resolve(str(repo), "main", mirrors)
    monkeypatch.setattr(source, "_git", real_git)

    assert source.resolve(str(repo), "main", mirrors).sha == git(repo, "rev-parse", "main")


def test_a_remote_repository_is_mirrored_and_fetched_again(repo: Path, tmp_path: Path) -> None:
    url = f"file://{repo}"
    mirrors = tmp_path / "mirrors"

    first = source.resolve(url, "main", mirrors)
    second_sha = commit_files(repo, {"more.txt": "more\n"})
    second = source.resolve(url, "main", mirrors)

    assert first.sha != second.sha == second_sha
    assert Path(second.git_dir).parent == mirrors
    assert len(list(mirrors.glob("*.git"))) == 1


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


def test_exported_directories_are_readable_by_other_users_whatever_the_umask(
    repo: Path, tmp_path: Path
) -> None:
    # The servers run with umask 077; a Docker image's non-root USER must still read its code.
    commit = source.resolve(str(repo), "HEAD", tmp_path / "mirrors")
    previous = os.umask(0o077)
    try:
        source.export(commit, "", tmp_path / "export")
    finally:
        os.umask(previous)

    assert oct((tmp_path / "export" / "web").stat().st_mode & 0o777) == "0o755"
    assert oct((tmp_path / "export" / "web" / "server.py").stat().st_mode & 0o777) == "0o644"


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


def _arm(repo: Path, tmp_path: Path) -> Path:
    """Make `repo`'s own .git run a program wherever git lets it: signature checks, fsmonitor,
    a smudge filter that `git archive` applies, hooks, upload-pack's hook. Returns the file the
    program appends to each time it runs."""
    ran = tmp_path / "ran.log"
    program = tmp_path / "trap.sh"
    program.write_text(f'#!/bin/sh\necho "$0 $*" >> {ran}\ncat\n')
    program.chmod(0o755)
    for key, value in {
        "log.showSignature": "true",
        "gpg.program": str(program),
        "core.fsmonitor": str(program),
        "filter.trap.smudge": str(program),
        "filter.trap.process": str(program),
        "diff.external": str(program),
        "core.sshCommand": str(program),
        "credential.helper": f"!{program}",
        "uploadpack.packObjectsHook": str(program),
    }.items():
        git(repo, "config", key, value)
    for hook in ("post-checkout", "reference-transaction", "pre-auto-gc", "post-update"):
        shutil.copy(program, repo / ".git" / "hooks" / hook)
    commit_files(repo, {".gitattributes": "* filter=trap\n"})
    # A signed commit on top (the signature need not be valid: git runs gpg.program to check it).
    commit = (
        f"tree {git(repo, 'rev-parse', 'HEAD^{tree}')}\nparent {git(repo, 'rev-parse', 'HEAD')}\n"
        "author A <a@shipyard.invalid> 1700000000 +0000\n"
        "committer A <a@shipyard.invalid> 1700000000 +0000\n"
        "gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n"
        "\nsigned\n"
    )
    (tmp_path / "commit.txt").write_text(commit)
    signed = git(repo, "hash-object", "-t", "commit", "-w", str(tmp_path / "commit.txt"))
    git(repo, "update-ref", "refs/heads/main", signed)
    return ran


def test_a_repositorys_own_git_config_and_hooks_never_run_a_program(
    repo: Path, tmp_path: Path
) -> None:
    ran = _arm(repo, tmp_path)
    # The traps are armed: git run in the repository itself does call the program.
    git(repo, "log", "-1")
    git(repo, "archive", "--format=tar", "-o", str(tmp_path / "plain.tar"), "HEAD")
    assert ran.read_text().count("trap.sh") >= 2
    ran.unlink()
    mirrors = tmp_path / "mirrors"

    commit = source.resolve(str(repo), "main", mirrors)
    source.export(commit, "", tmp_path / "export")
    assert not ran.exists(), ran.read_text()
    commit_files(repo, {"more.txt": "more\n"})  # runs the traps: git in the repository itself
    ran.unlink()
    again = source.resolve(str(repo), "main", mirrors)  # a fetch into the existing mirror
    source.export(again, "web", tmp_path / "export-web")

    assert not ran.exists(), ran.read_text()
    assert commit.sha == git(repo, "rev-parse", "main~1") and again.sha != commit.sha
    assert (tmp_path / "export" / "README.md").read_text() == "root\n"  # not filtered


def test_git_runs_without_user_or_system_config_and_without_safe_directory_star(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(command: list[str], **kwargs: object) -> object:
        calls.append((command, kwargs["env"]))  # type: ignore[arg-type]
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", recording_run)
    commit = source.resolve(str(repo), "main", tmp_path / "mirrors")
    source.resolve(str(repo), "main", tmp_path / "mirrors")
    source.export(commit, "", tmp_path / "export")

    assert {"clone", "fetch", "log", "archive"} <= {
        part for command, _ in calls for part in command
    }
    for command, env in calls:
        assert not any(part.startswith("safe.directory") for part in command)
        assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["HOME"] == "/nonexistent"
        assert "core.fsmonitor=false" in command and "gpg.program=false" in command
        if "clone" in command or "fetch" in command:  # the repository alone is trusted
            trusted = Path(env["GIT_CONFIG_GLOBAL"]).read_text()
            assert trusted.count("directory = ") == 2 and f'"{repo}"' in trusted
            assert "*" not in trusted
        else:
            assert env["GIT_CONFIG_GLOBAL"] == os.devnull


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the repository away")
def test_a_repository_owned_by_another_user_is_mirrored_without_trusting_it(
    repo: Path, tmp_path: Path
) -> None:
    ran = _arm(repo, tmp_path)
    ran.unlink(missing_ok=True)
    head = git(repo, "rev-parse", "main")
    for path in [repo, *repo.rglob("*")]:
        os.lchown(path, 65534, 65534)  # nobody

    commit = source.resolve(str(repo), "main", tmp_path / "mirrors")
    source.export(commit, "web", tmp_path / "export")

    assert commit.sha == head
    assert (tmp_path / "export" / "Procfile").read_text() == "web: python server.py\n"
    assert not ran.exists()
