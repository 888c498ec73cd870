"""Connection settings for one Postgres database, shared by the event store and read models.

A URL such as ``postgresql://user:secret@host:5432/db`` or the embedded server's socket form
``postgresql://postgres:@/postgres?host=/var/lib/tradecore/run`` is parsed once into the
parts psycopg, SQLAlchemy and the eventsourcing library each want.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine

from adapters.errors import StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class DatabaseAddress:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> DatabaseAddress:
        """Parse a postgresql:// URL; raises StoreUnavailable naming what is wrong."""
        if not url.startswith(("postgresql://", "postgres://")):
            raise StoreUnavailable(
                f"invalid database URL {redact(url)!r}: it must start with postgresql://"
            )
        try:
            parts: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError as e:
            raise StoreUnavailable(f"invalid database URL {redact(url)!r}: {e}") from None
        try:
            port = int(parts.get("port") or 5432)
        except ValueError:
            raise StoreUnavailable(f"invalid port in database URL {redact(url)!r}") from None
        return cls(
            host=str(parts.get("host") or "localhost"),
            port=port,
            dbname=str(parts.get("dbname") or parts.get("user") or "postgres"),
            user=str(parts.get("user") or "postgres"),
            password=str(parts.get("password") or ""),
        )

    def with_dbname(self, dbname: str) -> DatabaseAddress:
        return DatabaseAddress(self.host, self.port, dbname, self.user, self.password)

    @property
    def url(self) -> str:
        """A libpq URL (with the password, so never log it: use :attr:`display`)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{self.dbname}?host={quote(self.host)}&port={self.port}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def display(self) -> str:
        """The address without the password, for messages."""
        if self.host.startswith("/"):
            return f"postgresql://{self.user}@/{self.dbname}?host={self.host}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """Open a psycopg connection; raises StoreUnavailable with one clear line."""
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.dbname,
                user=self.user,
                password=self.password,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                autocommit=autocommit,
            )
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to {self.display}: {first_line(e)}") from None

    def check(self) -> None:
        """Connect once and run a trivial query, so a bad address fails before any work."""
        with self.connect() as conn:
            conn.execute("SELECT 1")

    def engine(self, *, pool_size: int = 5) -> Engine:
        """A SQLAlchemy engine (psycopg 3 driver) for the read models."""
        return create_engine(
            "postgresql+psycopg://",
            connect_args={
                "host": self.host,
                "port": self.port,
                "dbname": self.dbname,
                "user": self.user,
                "password": self.password,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            },
            pool_size=pool_size,
            pool_pre_ping=True,
        )


def redact(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, tail = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in auth else url


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
