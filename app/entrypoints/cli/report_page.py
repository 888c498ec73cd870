"""What the incident and the replay HTML reports share: the equity, peak and drawdown chart,
and writing a page whole or not at all."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from domain.errors import InvalidCommand


def equity_chart_png(
    path: Sequence[dict[str, Any]],
    marks: Iterable[tuple[datetime, str, str]],
    *,
    title: str,
    thresholds: Iterable[tuple[float, str]] = (),
    width: float = 10,
) -> bytes:
    """A PNG of two panels over time: equity and its peak (quote currency) above, drawdown
    (percent) below. ``path``: points with ``at``, ``equity``, ``peak`` and ``drawdown`` (a
    fraction, e.g. -0.1); ``marks``: (time, label, colour) drawn as vertical lines, labelled
    when the label is not empty; ``thresholds``: (drawdown as a fraction, colour) drawn as
    horizontal lines on the drawdown panel."""
    import matplotlib  # noqa: PLC0415 - slow to import; only the HTML reports need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    times = [p["at"] for p in path]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 6), sharex=True)
    top.plot(times, [float(p["equity"]) for p in path], color="#1f5fa8", label="equity")
    top.plot(times, [float(p["peak"]) for p in path], color="#888888", ls="--", label="peak")
    top.set_ylabel("equity")
    bottom.plot(times, [float(p["drawdown"]) * 100 for p in path], color="#b22222")
    for level, colour in thresholds:
        bottom.axhline(level * 100, color=colour, ls=":", lw=1)
    bottom.set_ylabel("drawdown %")
    for at, label, colour in marks:
        for axis in (top, bottom):
            axis.axvline(at, color=colour, lw=1)
        if label:
            top.annotate(
                label,
                (at, 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                color=colour,
            )
    top.legend(loc="lower left")
    top.set_title(title)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def write_page(target: Path, page: str, *, option: str = "--html") -> None:
    """Write ``page`` to ``target`` whole or not at all (a temporary file beside it, then a
    rename). Raises InvalidCommand naming ``option`` when the file cannot be written."""
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InvalidCommand(f"{option} {target}: cannot write it ({e.strerror})") from None
