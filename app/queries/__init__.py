"""The read side: answers from the read models and from the log (status views, the CLI's
views, the audit, the incident report, the policy gate). Nothing here changes state.

May import: ``domain``, ``adapters``, ``projections``, ``app.config``. Never ``app.commands``
internals, ``app.processes`` or ``app.entrypoints``.
"""
