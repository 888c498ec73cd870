"""The options many commands share, declared once so that each reads and helps alike."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
Actor = Annotated[
    str | None, typer.Option("--actor", help="who acts (default: login name)", show_default=False)
]
Reason = Annotated[str, typer.Option("--reason", help="why (recorded)")]
