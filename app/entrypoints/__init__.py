"""Where a person or a process enters: the CLI, the status API and dashboard, the worker and
the demo. Each takes a ``Core`` from ``app.bootstrap`` and calls commands and queries.

May import anything in ``app``; nothing imports it (the console script names
``app.entrypoints.cli.main``).
"""
