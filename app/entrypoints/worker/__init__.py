"""The worker: one process that runs every projection and process manager for the account.

It reads the account's equity for the drawdown breaker (every ``equity_interval`` and on
each paper mark move), keeps the read models at the head and supervises the emergency stop:
on start it catches up on any activation it has not seen to a flat account, and while the
latch is on it keeps the account flat (retrying an incomplete flatten at a lower rate, and
re-checking a flat one now and then, since a position can appear from outside).

A small supervisor (``supervisor``) over separate duties, one module each, each a class
with one ``run_once()`` (or ``read``/``check``) a test can drive alone:
``breaker`` (its own thread), ``supervision`` (the emergency), ``projections`` (the
catch-up), ``models``, ``signals``, ``reconciliation``, ``status`` (heartbeat, outages) and
``watchdog`` (the lock, the embedded server). ``duty.Duty`` is the failure boundary: a read
model that cannot apply an event, a model that will not load or a venue that will not
answer delays only its own duty, never the emergency supervision (which reads the Emergency
aggregate, not a view) nor the breaker. A read model whose rows another transaction holds
(a stopped process's, for ever) delays the catch-up by at most twice
``app.bootstrap.READ_MODEL_LOCK_WAIT`` a round and is passed over until they are free.

When the store goes away it keeps running, retries with a bounded backoff, and when the
store returns it catches up from the tracked positions: the log is the buffer. It records
each outage and the catch-up after it (events, seconds) in ``worker_status``. On the
embedded default it also watches the server itself and restarts it if it dies
(app.processes.server_watch): nobody else would.

May import what ``app.entrypoints`` may; nothing but ``app.entrypoints`` imports it.
"""

from app.entrypoints.worker.breaker import BreakerLoop
from app.entrypoints.worker.duty import Duty
from app.entrypoints.worker.status import WORKER_NAME
from app.entrypoints.worker.supervisor import Worker, run_exclusively

__all__ = ["WORKER_NAME", "BreakerLoop", "Duty", "Worker", "run_exclusively"]
