"""The dashboard in a real headless browser (Debian's chromium): it loads, shows the
emergency banner once the stop is active, and a screenshot is taken."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import TRADECORE, Cli
from tests.waiting import wait_for

BANNER = '<div id="banner" role="alert" class="active">EMERGENCY STOP ACTIVE'


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:  # never a silent skip: .ci/run installs it
        pytest.fail("headless Chromium is required: apt-get install chromium")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(cli: Cli) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(TRADECORE), "serve", "--port", str(port)],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"tradecore serve exited {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_for(answers, 30, interval=0.2, what="tradecore serve answering /api/status")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def browse(url: str, *extra: str) -> str:
    done = subprocess.run(
        [
            chromium(),
            "--headless=new",
            "--no-sandbox",  # as root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=8000",  # let the page fetch and render its data
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_dashboard_shows_the_emergency_banner_after_an_activation(
    cli: Cli, server: str, tmp_path: Path
) -> None:
    assert cli("paper", "deposit", "--amount", "1000").code == 0
    assert cli("status", "--json").code == 0  # the read models at the head
    calm = browse(server + "/", "--dump-dom")
    assert 'id="safeguards"' in calm and "p0_07_dd_monitor" in calm
    assert BANNER not in calm

    activated = cli("emergency", "activate", "--reason", "browser drill", "--yes")
    assert activated.code == 0, activated.stderr
    assert cli("status", "--json").code == 0
    dom = browse(server + "/", "--dump-dom")
    assert BANNER in dom and "browser drill" in dom
    assert '<a href="/incidents/1">1</a>' in dom  # the incident, linked to its report

    shot = tmp_path / "dashboard.png"
    browse(server + "/", f"--screenshot={shot}", "--window-size=1280,1700")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    report = browse(server + "/incidents/1", "--dump-dom")
    assert "data:image/png;base64," in report and "browser drill" in report


def test_serve_on_a_port_in_use_says_so_and_exits_1(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = cli("serve", "--port", str(port))
    assert answer.code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in answer.stderr
    assert "dashboard on" not in answer.stderr  # nothing announced that is not there
