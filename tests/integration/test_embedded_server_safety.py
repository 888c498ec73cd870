"""The embedded server never loosens a private folder and never trusts a planted one."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from adapters.embedded_pg import EmbeddedPostgres, _private_folder
from adapters.errors import EmbeddedServerRefused


def test_a_planted_world_writable_socket_folder_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "socket"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(EmbeddedServerRefused, match="0700"):
        _private_folder(planted, os.getuid(), os.getgid())


def test_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    link = tmp_path / "socket"
    link.symlink_to(victim)
    with pytest.raises(EmbeddedServerRefused):
        _private_folder(link, os.getuid(), os.getgid())
    assert victim.stat().st_uid == os.getuid()


def test_a_folder_created_for_the_server_is_private(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    _private_folder(folder, os.getuid(), os.getgid())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    _private_folder(folder, os.getuid(), os.getgid())  # and it is accepted next time


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could loosen another folder")
def test_root_refuses_an_existing_private_home_and_leaves_it_alone() -> None:
    parent = Path(tempfile.mkdtemp(prefix="tradecore-home-"))
    parent.chmod(0o755)
    home = parent / "home"
    home.mkdir(mode=0o700)
    try:
        with pytest.raises(EmbeddedServerRefused, match="refusing"):
            EmbeddedPostgres(home).ensure_running()
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
    finally:
        home.rmdir()
        parent.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server drops root only when started as root")
def test_the_server_started_as_root_keeps_no_root_group(own_server: EmbeddedPostgres) -> None:
    pid = (own_server.pgdata / "postmaster.pid").read_text().splitlines()[0]
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
    assert "0" not in uids
    assert "0" not in gids
    assert "0" not in groups
