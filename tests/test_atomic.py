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
