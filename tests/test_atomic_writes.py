"""phenom_data.atomic: a failed write leaves the old file (or folder) and no temporary behind; results get normal
permissions."""

import json
import os
import stat

import pytest

from phenom_data.atomic import atomic_directory, atomic_path, atomic_write_json, atomic_write_text, replace_directory


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"recall": 0.5})
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text('{"recall": ')  # half a file, then the writer dies
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"recall": 0.5}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]


def test_write_creates_parent_folders_and_replaces_content(tmp_path):
    target = tmp_path / "a" / "b" / "note.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert sorted(path.name for path in target.parent.iterdir()) == ["note.txt"]


def test_written_files_follow_the_umask_not_private_temporary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "card.md", "# card")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_folder_write_keeps_the_old_folder_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "final"
    with atomic_directory(target) as folder:
        (folder / "config.json").write_text("{}")
    with pytest.raises(RuntimeError), atomic_directory(target) as folder:
        (folder / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["final"]
    assert sorted(path.name for path in target.iterdir()) == ["config.json"]


def test_a_finished_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "runs" / "trimmed"
    with atomic_directory(target) as folder:
        (folder / "old.json").write_text("old")
    with atomic_directory(target) as folder:
        assert not any(folder.iterdir()) and folder.parent == target.parent
        (folder / "new.json").write_text("new")
    assert sorted(path.name for path in target.parent.iterdir()) == ["trimmed"]
    assert sorted(path.name for path in target.iterdir()) == ["new.json"]


def test_replace_directory_refuses_a_missing_staged_folder_and_keeps_the_target(tmp_path):
    (tmp_path / "final").mkdir()
    with pytest.raises(FileNotFoundError, match=r"final\.tmp is not a folder"):
        replace_directory(tmp_path / "final.tmp", tmp_path / "final")
    assert (tmp_path / "final").is_dir()
