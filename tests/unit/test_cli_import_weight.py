"""The CLI's start-up loads only what every command needs: an operator's `emergency activate`
must not wait for numpy or LightGBM, which only the commands that read candles or models use."""

from __future__ import annotations

import json
import subprocess
import sys


def test_importing_the_cli_loads_neither_numpy_nor_lightgbm() -> None:
    probe = (
        "import json, sys; import app.entrypoints.cli.main; "
        "print(json.dumps(sorted(m for m in ('numpy', 'lightgbm', 'ccxt') if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
