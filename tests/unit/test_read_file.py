"""Unit tests for convoy.content.read_file: whole content whatever size the caller's stat gave."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoy import content
from convoy.content import read_file


@pytest.mark.parametrize("data", [b"", b"x", b"hello world\n" * 100])
def test_the_stat_size_reads_the_file_whole(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "f").write_bytes(data)
    assert read_file(tmp_path / "f", len(data)) == data
    assert read_file(tmp_path / "f") == data


def test_a_file_grown_or_shrunk_since_its_stat_is_read_to_its_end(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    assert read_file(tmp_path / "f", 4) == b"0123456789"  # grew after the stat
    assert read_file(tmp_path / "f", 20) == b"0123456789"  # shrank after the stat


def test_a_file_larger_than_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content, "_READ_BUF", 7)
    data = bytes(range(256)) * 3
    (tmp_path / "f").write_bytes(data)
    assert read_file(tmp_path / "f", len(data)) == data
    assert read_file(tmp_path / "f", 5) == data
