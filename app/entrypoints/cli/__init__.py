"""The ``tradecore`` command (Typer + rich)."""
