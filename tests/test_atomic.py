"""Atomic outputs: a failing writer leaves no file behind, a successful one leaves one."""

from __future__ import annotations

import pytest

from jetfm.atomic import atomic_path, write_text_atomic


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "jets.root"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        assert tmp.suffix == ".root" and tmp.parent == target.parent
        raise RuntimeError("writer failed")
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path):
    target = write_text_atomic(tmp_path / "a.json", "old")
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("new, partial")
        raise ValueError
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new"


def test_finished_outputs_get_the_umask_permissions(tmp_path):
    """mkstemp's temporary file is private (0600); the renamed output is 0666 less the umask,
    as a file opened for writing would be."""
    import os

    old = os.umask(0o022)
    try:
        path = write_text_atomic(tmp_path / "a.json", "{}")
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
