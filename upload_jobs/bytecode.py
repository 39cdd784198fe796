"""Bytecode written once, also where `PYTHONDONTWRITEBYTECODE=1` is set (as on this project's
machine kind and in many containers).

Without compiled bytecode every command compiles what it imports again (1.0 s of `list`'s
1.5 s, 5.4 CPU-s for a flow run's Prefect import). uv's `compile-bytecode` setting compiled it at
install, but uv then recompiles the whole environment on every `uv run` (12,424 files, 1-3.6 s
a command here: astral-sh/uv#12202). So the project's entry points let Python write the bytecode
of each module they import, the first time they import it: one command pays, the next ones
read it.
"""

from __future__ import annotations

import sys


def write_bytecode_once() -> None:
    """Let this process write the bytecode of what it imports from now on (each module once)."""
    sys.dont_write_bytecode = False
