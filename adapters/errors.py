"""Infrastructure errors the rest of the core understands."""


class StoreUnavailable(Exception):
    """The event store (Postgres) cannot be reached or refused us. CLI exit code 4.

    The message is one line, names what failed, and never contains a password.
    """


class StoreNotMigrated(StoreUnavailable):
    """The database is reachable but its schema is not at the code's alembic head."""


class EmbeddedServerRefused(Exception):
    """The embedded server cannot be used here safely (e.g. it would loosen a private folder)."""


class StoreBusy(StoreUnavailable):
    """The server refused a new connection because all its connection slots are taken
    (SQLSTATE 53300, "too many clients"). Still CLI exit code 4, with its own message."""
