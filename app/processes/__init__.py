"""Process managers: each follows the log (or the venue) and acts, with its own tracking
record so a restart resumes where it stopped: the emergency flattener, the drawdown breaker,
reconciliation, the sizing learner, the model consumers, the signal engine, the closer of
trades after an emergency, the watch over the embedded server.

May import: ``domain``, ``adapters``, ``app.config``, ``app.commands`` (a process manager
issues commands). Never ``app.entrypoints``.
"""
