"""The write side: commands that change aggregates, each loaded, changed and saved through
``adapters.repository`` (one retry policy), and the executor, the only path from a trade
intent to an order that opens risk.

May import: ``domain``, ``adapters``, ``app.config``, ``app.queries.gate`` (the one question
asked before opening risk). Never ``app.processes`` or ``app.entrypoints``.
"""
