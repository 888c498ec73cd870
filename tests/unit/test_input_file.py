"""Files an operator names are read whole only when they are regular, small and UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.entrypoints.cli.input_file import read_input_file
from domain.errors import InvalidCommand


def test_a_regular_utf8_file_within_the_bound_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("\ufefftimestamp,open\n€\n", encoding="utf-8")
    assert read_input_file(path, "--data", max_bytes=64) == "\ufefftimestamp,open\n€\n"


def test_a_file_over_the_bound_is_refused_after_reading_only_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short relative name: a long path is shown cut, and tmp_path's length varies.
    monkeypatch.chdir(tmp_path)
    path = Path("big.csv")
    path.write_bytes(b"x" * 11)
    with pytest.raises(InvalidCommand, match=r"^--data .*big\.csv.*: larger than 10 bytes"):
        read_input_file(path, "--data", max_bytes=10)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_anything_but_a_regular_file_is_refused_without_reading_it(
    tmp_path: Path, kind: str
) -> None:
    path = {"directory": tmp_path, "fifo": tmp_path / "fifo", "device": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking open or read would hang here
    with pytest.raises(InvalidCommand, match=r"^--data .*: cannot read: not a regular file$"):
        read_input_file(path, "--data")


def test_a_missing_file_or_one_that_is_not_utf8_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative name (see above)
    with pytest.raises(InvalidCommand, match=r"^FILE .*nope\.json.*: cannot read"):
        read_input_file(Path("nope.json"), "FILE")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"id": "caf\xe9"}')
    with pytest.raises(InvalidCommand, match=r"not UTF-8 text \(byte 11\)"):
        read_input_file(latin, "FILE")
