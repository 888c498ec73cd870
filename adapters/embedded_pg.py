"""The embedded default: a real PostgreSQL (the ``pgserver`` package's binaries) under a home.

Why not ``pgserver.get_server``: as root it runs the server as another user and chmods every
parent of the data directory (and of its own binaries) to o+rx, which opened private home
folders to all users on this machine (docs/ARCHITECTURE.md, decision 3). We use its PostgreSQL build
and drive ``initdb``/``pg_ctl`` ourselves, so nothing outside the tradecore home changes.

The server is started once and left running between commands (each command should answer
well under a second); ``stop()`` ends it. Start-up is serialised by a file lock, so two
``tradecore`` processes at once share one server. It listens on a unix socket only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from adapters.database import DatabaseAddress, is_busy
from adapters.errors import EmbeddedServerRefused, StoreUnavailable
from adapters.migrations import APP_ROLE

SYSTEM_USER = "tradecore-pg"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the terminator).
MAX_SOCKET_PATH = 100
PORT = 5432
# PostgreSQL's default is 100. A CLI command holds one or two connections and the worker
# about ten, so this leaves room for well over a hundred commands at once (a burst of
# operators and scripts) before anyone waits for a slot; each slot costs the server only
# some kilobytes of shared memory. A server started before this setting keeps its own
# limit until it is restarted.
MAX_CONNECTIONS = 300


def _pg_bin() -> Path:
    # Located without importing pgserver: importing it builds its server class, which reads
    # platform folders at import time and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StoreUnavailable("the pgserver package is not installed: pip install pgserver")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def is_root() -> bool:
    return os.geteuid() == 0


def default_home() -> Path:
    """``~/.tradecore``; as root ``/var/lib/tradecore``, whose parents others can traverse."""
    if is_root():
        return Path("/var/lib/tradecore")
    return Path.home() / ".tradecore"


def closed_ancestors(path: Path) -> list[Path]:
    """Existing ancestors of ``path`` (and itself) that other users cannot traverse."""
    closed = []
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & stat.S_IXOTH:
            closed.append(p)
    return closed


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``<home>/pgdata``."""

    def __init__(self, home: Path) -> None:
        self.home = home.expanduser().absolute()
        self.pgdata = self.home / "pgdata"
        self.run_dir = self.home / "run"
        self.lock_path = self.home / "embedded.lock"

    # -- public --------------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        if len(str(self.run_dir / f".s.PGSQL.{PORT}")) <= MAX_SOCKET_PATH:
            return self.run_dir
        # A deep home: put the socket in a short, per-home folder under /tmp instead.
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tradecore-{digest}"

    @property
    def address(self) -> DatabaseAddress:
        """Where the application connects: as the app role, which cannot alter events. It
        exists, and may log in, once the owner has migrated (``owner_address``)."""
        return DatabaseAddress(str(self.socket_dir), PORT, "postgres", APP_ROLE, "")

    @property
    def owner_address(self) -> DatabaseAddress:
        """The superuser that initdb made: for migrations (and tests) only."""
        return DatabaseAddress(str(self.socket_dir), PORT, "postgres", "postgres", "")

    def ensure_running(self) -> DatabaseAddress:
        """Start the server if it is not running (initialising it on first use); return its
        owner's address.

        Raises EmbeddedServerRefused if the home cannot be used safely, StoreUnavailable if the
        server fails to start (the message points at its log).
        """
        if self.is_running():
            return self.owner_address
        self._refuse_a_silent_server()
        self._prepare_home()
        with self._locked():
            # Under the lock: a second process starting at the same moment must not look at
            # a data folder the first has made but not yet handed to the server's user.
            self._private_folders()
            if not self.is_running():
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb()
                self._start()
        return self.owner_address

    def is_running(self) -> bool:
        """Whether the server answers. One that refuses us for want of a free connection slot
        is running: starting another over it would only fail (and say the wrong thing)."""
        try:
            with psycopg.connect(self.owner_address.url, connect_timeout=2):
                return True
        except psycopg.OperationalError as e:
            return is_busy(e)
        except psycopg.Error:
            return False

    def silent_pid(self) -> int | None:
        """The pid of this home's server when its process lives but it did not answer
        (``is_running`` False): stopped, hung or overloaded. None when no such process."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None  # no pid file, or its process is gone (a crash leaves it stale)
        return pid if b"postgres" in cmdline else None  # a stale file's pid, reused

    def _refuse_a_silent_server(self) -> None:
        # pg_ctl would refuse to start over it and say only that it failed: say what it is.
        pid = self.silent_pid()
        if pid is not None:
            raise StoreUnavailable(
                f"the embedded PostgreSQL (pid {pid}) is running but does not answer "
                "(stopped, hung or overloaded); not starting another over it (its log: "
                f"{self.socket_dir / 'postgres.log'})"
            )

    def stop(self, *, mode: str = "fast") -> bool:
        """Stop the server. Returns False if it was not running. ``mode``: smart|fast|immediate."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        with self._locked():
            result = self._pg_ctl(["stop", "-m", mode, "-w", "-t", "60"], check=False)
        return result.returncode == 0

    def start(self) -> DatabaseAddress:
        """Start a server that exists (alias of ensure_running, for fault tests)."""
        return self.ensure_running()

    # -- internals -----------------------------------------------------------------------------

    def _prepare_home(self) -> None:
        try:
            if is_root():
                self._prepare_home_as_root()
            else:
                self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise EmbeddedServerRefused(
                f"cannot use {self.home} as TRADECORE_HOME: {e.strerror or e}"
            ) from None

    def _prepare_home_as_root(self) -> None:
        # The server runs as another user, who must enter the home. We never loosen a folder
        # that exists already: only folders created here get o+x.
        if self.home.exists() and not self.home.is_dir():
            raise EmbeddedServerRefused(f"TRADECORE_HOME {self.home} is not a folder")
        closed = closed_ancestors(self.home.parent)
        if self.home.exists() and not self.home.stat().st_mode & stat.S_IXOTH:
            closed.insert(0, self.home)
        if closed:
            raise EmbeddedServerRefused(
                f"refusing to use {self.home} as root: the embedded server runs as user "
                f"{SYSTEM_USER!r}, which would need {closed[0]} opened to all users. "
                "Choose a TRADECORE_HOME whose folders others can already enter "
                "(e.g. /var/lib/tradecore) or set TRADECORE_DATABASE_URL."
            )
        missing = [p for p in [self.home, *self.home.parents] if not p.exists()]
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o755)
            except FileExistsError:
                continue  # another tradecore process, starting at the same moment, made it
            folder.chmod(0o755)  # whatever the umask: the server user must enter it

    def _private_folders(self) -> None:
        """The data and socket folders, owned by the server's user, mode 0700."""
        try:
            uid, gid = self._system_user() if is_root() else (os.getuid(), os.getgid())
            for folder in (self.pgdata, self.socket_dir):
                _private_folder(folder, uid, gid)
        except OSError as e:
            raise EmbeddedServerRefused(
                f"cannot use {self.home} as TRADECORE_HOME: {e.strerror or e}"
            ) from None

    def _system_user(self) -> tuple[int, int]:
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SYSTEM_USER)
        return entry.pw_uid, entry.pw_gid

    def _bin_dir(self) -> Path:
        bin_dir = _pg_bin()
        if not is_root() or not closed_ancestors(bin_dir):
            return bin_dir
        # The installed binaries sit under a folder the server user cannot enter (a venv in
        # /root, say). Copy them once into the home rather than opening that folder. The
        # layout is kept: the binaries find their libraries at $ORIGIN/../../../pgserver.libs.
        package = bin_dir.parent.parent  # site-packages/pgserver
        copy_root = self.home / "pgbin"
        copied_bin = copy_root / "pgserver" / "pginstall" / "bin"
        if not (copied_bin / "postgres").exists():
            staging = self.home / "pgbin.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(bin_dir.parent, staging / "pgserver" / "pginstall", symlinks=True)
            libs = package.parent / "pgserver.libs"
            if libs.exists():
                shutil.copytree(libs, staging / "pgserver.libs", symlinks=True)
            _readable_by_all(staging)
            shutil.rmtree(copy_root, ignore_errors=True)
            staging.rename(copy_root)
        return copied_bin

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        uid: int | None = None
        gid: int | None = None
        groups: list[int] | None = None
        if is_root():
            # Drop root entirely: the server user's own group, no supplementary groups.
            uid, gid = self._system_user()
            groups = []
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd="/",
            umask=0o077,
            user=uid,
            group=gid,
            extra_groups=groups,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise StoreUnavailable(
                f"embedded PostgreSQL failed ({Path(args[0]).name}): "
                f"{detail[-1] if detail else 'exit ' + str(result.returncode)} "
                f"(log: {self.socket_dir / 'postgres.log'})"
            )
        return result

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(
            [str(self._bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args], check=check
        )

    def _initdb(self) -> None:
        self._run(
            [
                str(self._bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ]
        )

    def _start(self) -> None:
        socket_dir = self.socket_dir
        # No TCP listener: only the unix socket in a folder private to the server's owner,
        # which is what makes trust authentication safe here.
        options = (
            f"-c listen_addresses='' -k {socket_dir} -p {PORT} -c max_connections={MAX_CONNECTIONS}"
        )
        self._pg_ctl(
            [
                "start",
                "-w",
                "-t",
                "60",
                "-s",
                "-o",
                options,
                "-l",
                str(socket_dir / "postgres.log"),
            ]
        )


def _private_folder(folder: Path, uid: int, gid: int) -> None:
    """Create ``folder`` 0700 for uid:gid, or check that the existing one is exactly that.

    The socket folder may sit in /tmp, where anyone could have created it first (or put a
    symlink there) to catch the server's socket: an existing folder must be a real
    directory, owned by the server's user and closed to everyone else.
    """
    try:
        folder.mkdir(mode=0o700)
        os.chown(folder, uid, gid, follow_symlinks=False)
        folder.chmod(0o700)
        return
    except FileExistsError:
        pass
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise EmbeddedServerRefused(
            f"refusing to use {folder}: it must be a directory owned by uid {uid} with mode "
            f"0700 (found uid {info.st_uid}, mode {stat.filemode(info.st_mode)})"
        )


def _readable_by_all(root: Path) -> None:
    """u=rwX,go=rX on a tree we created, whatever the umask was."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & stat.S_IXUSR
        path.chmod(0o755 if executable else 0o644)
