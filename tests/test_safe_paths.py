"""`phenom_data.paths`: names from data never become separators, paths from data never leave their root."""

import os
from pathlib import Path

import pytest

from phenom_data.paths import UnsafePathError, resolve_inside, safe_component


def test_safe_component_turns_separators_and_traversal_into_one_name():
    assert safe_component("x/../../../somewhere/name") == "x_.._.._.._somewhere_name"
    assert safe_component("pca-centerscale") == "pca-centerscale"
    assert "/" not in safe_component("a\\b/c") and "\\" not in safe_component("a\\b/c")


@pytest.mark.parametrize("text", ["", ".", ".."])
def test_safe_component_refuses_names_that_address_a_folder(text):
    with pytest.raises(UnsafePathError, match="cannot be used as a file name"):
        safe_component(text)


def test_resolve_inside_keeps_relative_paths_inside_the_root(tmp_path):
    (tmp_path / "images").mkdir()
    assert resolve_inside(tmp_path, "images/a.tif") == (tmp_path / "images" / "a.tif").resolve()
    with pytest.raises(UnsafePathError, match="leads outside"):
        resolve_inside(tmp_path / "images", "../../etc/passwd")


def test_resolve_inside_refuses_symlinks_out_of_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(UnsafePathError, match="leads outside"):
        resolve_inside(root, "escape/secret.txt")


def test_resolve_inside_refuses_absolute_paths_unless_allowed(tmp_path):
    with pytest.raises(UnsafePathError, match="is absolute"):
        resolve_inside(tmp_path, "/etc/passwd")
    assert resolve_inside(tmp_path, "/etc/passwd", allow_absolute=True) == Path("/etc/passwd").resolve()
