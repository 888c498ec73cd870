"""The HTML reports' shared parts: the equity chart, and a page written whole or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.entrypoints.cli.report_page import equity_chart_png, write_page
from domain.errors import InvalidCommand

T0 = datetime(2022, 1, 21, 21, tzinfo=UTC)


def test_the_equity_chart_is_a_png_with_marks_and_thresholds() -> None:
    path = [
        {"at": T0 + timedelta(minutes=i), "equity": 100 - i, "peak": 100, "drawdown": -i / 100}
        for i in range(12)
    ]
    png = equity_chart_png(
        path, [(T0 + timedelta(minutes=10), "hard", "r")], title="t", thresholds=[(-0.1, "r")]
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_a_page_that_cannot_be_written_is_refused_naming_the_option_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder where the page should go: the rename fails
    with pytest.raises(InvalidCommand, match=r"^--html .*taken: cannot write it"):
        write_page(target, "<p>page</p>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_page_replaces_an_older_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    write_page(target, "<p>new</p>")
    assert target.read_text(encoding="utf-8") == "<p>new</p>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
