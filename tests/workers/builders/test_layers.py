"""Layers: a folder packed as the artifact's first gzip member, reused by the next build."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from shipyard.shared.artifacts.files import file_digest
from shipyard.workers.archives import first_layer
from shipyard.workers.builders.layers import (
    KEPT_LAYERS,
    LAYER_MTIME,
    LayerCache,
    layer_key,
    pack_layer,
    pack_layered,
    snapshot,
)
from shipyard.workers.builders.local import pack_reproducibly

COMMIT_TIME = 1_700_000_000


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def _contents(artifact: Path) -> dict[str, tuple[str, int]]:
    with tarfile.open(artifact) as tar:
        contents = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            contents[member.name] = (handle.read().decode() if handle else "/", member.mtime)
        return contents


TREE = {
    "app.py": "print('hi')\n",
    "Procfile": "web: python3 app.py\n",
    ".python/site-packages/lib/__init__.py": "VALUE = 1\n",
    ".python/bin/tool": "#!/usr/bin/env python3\n",
}


def test_a_layered_artifact_is_one_tar_gz_holding_the_whole_tree(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    layer = pack_layer(tree, ".python", tmp_path / "layer.tar.gz")
    artifact = tmp_path / "artifact.tar.gz"

    pack_layered(tree, layer, artifact, mtime=COMMIT_TIME)

    contents = _contents(artifact)
    assert sorted(contents) == sorted(
        [
            ".python",
            ".python/bin",
            ".python/bin/tool",
            ".python/site-packages",
            ".python/site-packages/lib",
            ".python/site-packages/lib/__init__.py",
            "Procfile",
            "app.py",
        ]
    )
    assert contents["app.py"] == ("print('hi')\n", COMMIT_TIME)
    assert contents[".python/site-packages/lib/__init__.py"] == ("VALUE = 1\n", LAYER_MTIME)
    # Any tool unpacks it, not only Python's tarfile.
    listed = subprocess.run(
        ["tar", "-tzf", str(artifact)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(n.rstrip("/") for n in listed) == sorted(contents)


def test_the_first_member_is_the_same_bytes_whatever_the_code_and_the_commit(
    tmp_path: Path,
) -> None:
    first = _tree(tmp_path / "one", TREE)
    second = _tree(tmp_path / "two", {**TREE, "app.py": "print('changed')\n", "new.txt": "x"})
    layers = [
        pack_layer(tree, ".python", tmp_path / f"{tree.name}.layer") for tree in (first, second)
    ]
    artifacts = [tmp_path / "one.tar.gz", tmp_path / "two.tar.gz"]
    pack_layered(first, layers[0], artifacts[0], mtime=COMMIT_TIME)
    pack_layered(second, layers[1], artifacts[1], mtime=COMMIT_TIME + 60)

    found = [first_layer(a) for a in artifacts]

    assert layers[0].digest == layers[1].digest
    assert found[0] is not None and found[1] is not None
    assert found[0].folder == ".python"
    assert found[0].digest == found[1].digest == layers[0].digest
    assert found[0].end == layers[0].member.stat().st_size
    assert file_digest(artifacts[0]) != file_digest(artifacts[1])


def test_an_artifact_of_one_member_begins_with_no_layer(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    artifact = tmp_path / "artifact.tar.gz"
    pack_reproducibly(tree, artifact, mtime=COMMIT_TIME)
    lone = tmp_path / "lone.tar.gz"
    lone.write_bytes(pack_layer(tree, ".python", tmp_path / "layer").member.read_bytes())
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x1f\x8b\x08\x08\x00\x00\x00\x00\x02\xff.python\x00not deflate")

    assert first_layer(artifact) is None  # no name in its header
    assert first_layer(lone) is None  # nothing follows it
    assert first_layer(garbage) is None


def test_the_cache_gives_back_a_layer_whole_or_not_at_all(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    layer = pack_layer(tree, ".python", tmp_path / "layer")
    layer.key = layer_key("python-1", "3.11", "x86_64", "flask==3\n")
    cache = LayerCache(tmp_path / "layers")

    assert cache.get(layer.key, ".python") is None
    cache.put(layer)
    again = cache.get(layer.key, ".python")

    assert again is not None and again.reused and again.digest == layer.digest
    assert again.member.read_bytes() == layer.member.read_bytes()
    again.member.chmod(0o644)
    again.member.write_bytes(b"damaged")
    assert cache.get(layer.key, ".python") is None  # and removed: installed again
    assert list((tmp_path / "layers").iterdir()) == []


def test_the_cache_keeps_an_apps_most_recently_used_layers(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    cache = LayerCache(tmp_path / "layers")
    keys = [layer_key(str(n)) for n in range(KEPT_LAYERS + 2)]
    for key in keys:
        layer = pack_layer(tree, ".python", tmp_path / "layer")
        layer.key = key
        cache.put(layer)
        assert cache.get(keys[0], ".python") is not None  # used at every build: kept

    kept = [key for key in keys if cache.get(key, ".python") is not None]

    assert len(kept) == KEPT_LAYERS
    assert keys[0] in kept and keys[-1] in kept and keys[1] not in kept


def test_a_key_is_refused_unless_it_is_a_digest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a layer key"):
        LayerCache(tmp_path).get("../../etc/passwd", ".python")


def test_a_snapshot_sees_a_file_rewritten_with_its_old_size_and_time(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    target = tree / ".python" / "site-packages" / "lib" / "__init__.py"
    before = snapshot(tree / ".python")
    stat = target.stat()

    target.write_text("VALUE = 2\n")  # same size
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time

    assert snapshot(tree / ".python") != before


def test_a_snapshot_sees_the_folder_replaced_by_a_link_to_a_copy(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src", TREE)
    before = snapshot(tree / ".python")
    (tree / ".python").rename(tree / ".moved")
    (tree / ".python").symlink_to(".moved")

    assert before and snapshot(tree / ".python") == ()
    assert snapshot(tree / "missing") == ()
