"""Reading a file an operator names: a regular file, size-bounded, UTF-8 — or exit 2.

``--data /dev/zero`` or a FIFO would otherwise be read until the machine runs out of
memory; the bound is checked on the bytes actually read, not on what ``stat`` claims.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from domain.errors import InvalidCommand
from domain.validation import shown

# A legacy trade_state.json or an OHLCV CSV of several years of minute bars is far smaller.
MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024


def read_input_file(path: Path, option: str, *, max_bytes: int = MAX_INPUT_FILE_BYTES) -> str:
    """The text of the regular file at ``path`` (UTF-8, a BOM kept for the parser to drop).

    Raises InvalidCommand naming ``option`` and the file when it cannot be opened, is not a
    regular file (a device, a FIFO, a directory), holds more than ``max_bytes`` bytes, or is
    not UTF-8.
    """
    name = f"{option} {shown(str(path), limit=80)}"
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang before it is refused.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise InvalidCommand(f"{name}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidCommand(f"{name}: cannot read: not a regular file")
    with os.fdopen(fd, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InvalidCommand(f"{name}: cannot read: larger than {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidCommand(f"{name}: cannot read: not UTF-8 text (byte {e.start})") from None
